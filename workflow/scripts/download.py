"""Entry point of the download step: get the four raw IDX files and their manifest.

Three sources: the official mirrors (md5-checked), a local directory (validated, sha256
recorded), or the generated synthetic digits (offline smoke runs). Snakemake passes the
settings as arguments; DVC passes the config file(s) instead (``--config``).
"""

import argparse

from mnistbench.data.download import fetch_raw
from mnistbench.entry import run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True, help="directory for the four .gz files + manifest")
    p.add_argument("--config", nargs="+", help="config YAML file(s): use their `data` block")
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
    if a.config:
        from mnistbench.config import load_validated

        data = load_validated(*a.config)["data"]
    else:
        data = {
            "source": a.source,
            "local_dir": a.local_dir,
            "mirrors": a.mirrors,
            "download_retries": a.retries,
            "download_timeout_s": a.timeout,
            "download_backoff_s": a.backoff,
            "synthetic": {"n_train": a.n_train, "n_test": a.n_test, "seed": a.seed},
        }
    fetch_raw(data, a.out)


if __name__ == "__main__":
    run(main)
