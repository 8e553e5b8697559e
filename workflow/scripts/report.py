"""Entry point of the report step: comparison table (CSV + Markdown), summary, figures and
provenance.

The models come as directories (Snakemake, with the run's config as --run-config JSON) or from
the config file(s) (DVC, ``--config``).
"""

import argparse
import json

from mnistbench.entry import run
from mnistbench.reporting import build_report


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    models = p.add_mutually_exclusive_group(required=True)
    models.add_argument("--model-dirs", nargs="+", help="results/<dataset>/models/<m>")
    models.add_argument("--config", nargs="+", help="config YAML file(s): every model under it")
    p.add_argument("--run-config", default=None, help="with --model-dirs: the run's config, JSON")
    p.add_argument("--csv", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--summary", default=None, help="per-model test metrics as JSON (DVC metric)")
    p.add_argument("--curves", required=True, help="learning-curves PNG")
    p.add_argument("--f1-params", required=True, help="test F1 against parameters PNG")
    p.add_argument("--f1-ci", default=None, help="test F1 with bootstrap intervals PNG")
    p.add_argument("--pareto", default=None, help="test F1 against MACs and training time PNG")
    p.add_argument("--gallery", default=None, help="misclassified digits of the best model PNG")
    p.add_argument("--test", default=None, help="the prepared test.pt (for the gallery)")
    p.add_argument("--manifest", default=None, help="data/<dataset>/raw/manifest.json")
    p.add_argument("--provenance-csv", default=None, help="provenance rows for the front page")
    p.add_argument("--provenance-json", default=None, help="the whole provenance, config included")
    p.add_argument("--seeds-csv", default=None, help="mean and std over seeds per model")
    p.add_argument(
        "--failed",
        nargs="*",
        default=[],
        metavar="MODEL=STATUS",
        help="models without a result and why (after a failed run): listed, not left out",
    )
    a = p.parse_args(argv)
    config = json.loads(a.run_config) if a.run_config else None
    if a.config:
        from mnistbench.config import load_validated, model_dir, model_names

        config = load_validated(*a.config)
        a.model_dirs = [model_dir(config, m) for m in model_names(config)]
    failed = dict(item.split("=", 1) for item in a.failed)
    build_report(
        a.model_dirs,
        a.csv,
        a.md,
        a.curves,
        a.f1_params,
        a.summary,
        failed=failed,
        f1_ci_path=a.f1_ci,
        pareto_path=a.pareto,
        gallery_path=a.gallery,
        test_split=a.test,
        provenance_csv=a.provenance_csv,
        provenance_json=a.provenance_json,
        seeds_csv=a.seeds_csv,
        manifest=a.manifest,
        config=config,
    )


if __name__ == "__main__":
    run(main)
