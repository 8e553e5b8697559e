"""Entry point of the download step: get the four raw IDX files and their manifest.

Three sources: the official mirrors (md5-checked), a local directory (validated, sha256
recorded), or the generated synthetic digits (offline smoke runs).
"""

import argparse

from mnistbench.data.download import copy_local, download_mnist
from mnistbench.data.synthetic import write_synthetic
from mnistbench.entry import run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True, help="directory for the four .gz files + manifest")
    p.add_argument("--source", choices=["mnist", "synthetic"], default="mnist")
    p.add_argument("--local-dir", default=None, help="copy from here instead of downloading")
    p.add_argument("--mirrors", nargs="+", default=None)
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--backoff", type=float, default=1.0, help="first retry wait, in seconds")
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.source == "synthetic":
        write_synthetic(a.out, a.n_train, a.n_test, a.seed)
    elif a.local_dir:
        copy_local(a.local_dir, a.out)
    else:
        download_mnist(a.out, a.mirrors, retries=a.retries, timeout=a.timeout, backoff=a.backoff)


if __name__ == "__main__":
    run(main)
