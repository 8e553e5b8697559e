"""Entry point of the tune step: learning-rate and batch-size finders for one model."""

import argparse

from mnistbench.entry import add_model_settings_args, model_settings, run
from mnistbench.tuning import tune_model


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_model_settings_args(p)
    p.add_argument("--prepared", required=True, help="directory with train/val/test.pt")
    p.add_argument("--out", required=True, help="directory for suggestion.json, lr_finder.png")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--lr-steps", type=int, default=100, help="steps of the learning-rate sweep")
    p.add_argument("--min-lr", type=float, default=1e-6, help="first learning rate tried")
    p.add_argument("--max-lr", type=float, default=1.0, help="last learning rate tried")
    p.add_argument("--batch-trials", type=int, default=3, help="batch sizes the finder tries")
    a = p.parse_args(argv)
    tune_model(
        model_settings(a),
        a.prepared,
        a.out,
        a.threads,
        a.lr_steps,
        a.min_lr,
        a.max_lr,
        a.batch_trials,
    )


if __name__ == "__main__":
    run(main)
