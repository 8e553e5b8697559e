"""Entry point of the report step: comparison table (CSV + Markdown) and figures."""

import argparse

from mnistbench.entry import run
from mnistbench.reporting import build_report


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dirs", nargs="+", required=True, help="results/<dataset>/models/<m>")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--curves", required=True, help="learning-curves PNG")
    p.add_argument("--f1-params", required=True, help="test F1 against parameters PNG")
    p.add_argument(
        "--failed",
        nargs="*",
        default=[],
        metavar="MODEL=STATUS",
        help="models without a result and why (after a failed run): listed, not left out",
    )
    a = p.parse_args(argv)
    failed = dict(item.split("=", 1) for item in a.failed)
    build_report(a.model_dirs, a.csv, a.md, a.curves, a.f1_params, failed=failed)


if __name__ == "__main__":
    run(main)
