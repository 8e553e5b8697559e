"""Entry point of the evaluate step: score one trained model on the official test set."""

import argparse

from mnistbench.entry import run
from mnistbench.evaluation import evaluate


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--test", required=True, help="the prepared test.pt")
    p.add_argument(
        "--out", required=True, help="directory for metrics.json, confusion, predictions"
    )
    p.add_argument("--model", required=True, help="model name (for labels)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    evaluate(a.checkpoint, a.test, a.out, a.model, a.batch_size)


if __name__ == "__main__":
    run(main)
