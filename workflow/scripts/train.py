"""Entry point of the train step: one model, written to its results directory."""

import argparse

from mnistbench.entry import add_model_settings_args, model_settings, run
from mnistbench.training import train_model


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_model_settings_args(p)
    p.add_argument("--prepared", required=True, help="directory with train/val/test.pt")
    p.add_argument("--out", required=True, help="the model's results directory")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    a = p.parse_args(argv)
    train_model(model_settings(a), a.prepared, a.out, a.threads)


if __name__ == "__main__":
    run(main)
