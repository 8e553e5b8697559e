"""Entry point of the report step: comparison table (CSV + Markdown), summary and figures.

The models come as directories (Snakemake) or from the config file(s) (DVC, ``--config``).
"""

import argparse

from mnistbench.entry import run
from mnistbench.reporting import build_report


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    models = p.add_mutually_exclusive_group(required=True)
    models.add_argument("--model-dirs", nargs="+", help="results/<dataset>/models/<m>")
    models.add_argument("--config", nargs="+", help="config YAML file(s): every model under it")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--summary", default=None, help="per-model test metrics as JSON (DVC metric)")
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
    if a.config:
        from mnistbench.config import load_validated, model_dir, model_names

        config = load_validated(*a.config)
        a.model_dirs = [model_dir(config, m) for m in model_names(config)]
    failed = dict(item.split("=", 1) for item in a.failed)
    build_report(a.model_dirs, a.csv, a.md, a.curves, a.f1_params, a.summary, failed=failed)


if __name__ == "__main__":
    run(main)
