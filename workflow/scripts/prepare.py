"""Entry point of the prepare step: IDX files -> uint8 tensors and the seeded validation split."""

import argparse

from mnistbench.data.prepare import prepare_dataset
from mnistbench.entry import run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--raw", required=True, help="directory with the four IDX .gz files")
    p.add_argument("--out", required=True, help="directory for train/val/test.pt + stats.json")
    p.add_argument("--val-size", type=int, required=True)
    p.add_argument("--split-seed", type=int, default=0)
    a = p.parse_args(argv)
    prepare_dataset(a.raw, a.out, a.val_size, a.split_seed)


if __name__ == "__main__":
    run(main)
