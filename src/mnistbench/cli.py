"""The ``mnistbench`` command: one subcommand per stage, called by the Snakemake rules, the DVC
stages and people alike, and the tools around them.

    mnistbench download                       # the stages of config/config.yaml, in order
    mnistbench prepare
    mnistbench train --model cnn --threads 2
    mnistbench evaluate --model cnn
    mnistbench ensemble --ensemble cnn-ensemble   # with seeds: cnn's seed runs combined
    mnistbench report
    mnistbench summarize                      # with datasets: [...], model x data set
    mnistbench tune --model cnn               # on request: learning-rate and batch-size finders
    mnistbench train --configfile config/config.yaml config/smoke.yaml --model cnn
    mnistbench predict results/mnist/models/cnn digit.png photo.jpg --out preds.csv
    mnistbench export results/mnist/models/cnn --out cnn.onnx
    mnistbench dvc-yaml > dvc.yaml            # the DVC pipeline of config/config.yaml
    mnistbench docs-tables README.md docs/*.md   # the docs' tables, from benchmarks/results/
    mnistbench docs-tables --check README.md docs/*.md   # exit 2 if one differs from its source

A stage reads the config files (merged in order; ``--set`` a JSON mapping merged last, as
Snakemake's ``--config``) and finds its files from them. Exit status: 0 on success
(``predict``: at least one input predicted); 1 when ``predict`` could read none of the given
files; 2 on a user error (a config, model, file or option that cannot be used), printed as one
``mnistbench error:`` line.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mnistbench.errors import MnistbenchError
from mnistbench.signals import stopped_by_signals

DEFAULT_CONFIG = "config/config.yaml"
STAGE_HELP = {
    "download": "get the data set's raw files (downloaded, copied or generated), their manifest",
    "prepare": "IDX files -> uint8 tensors and the seeded validation split",
    "train": "train one run (a model, or one seed or sweep point of it)",
    "evaluate": "score one trained run on the test set, with its costs",
    "ensemble": "combine runs: members and weights chosen on validation, scored on the test set",
    "report": "the comparison of every run: table, statistics, figures, provenance",
    "tune": "learning-rate and batch-size finders for one run",
    "summarize": "the test F1 of every model on every data set of `datasets`, in one table",
}


def _config_args(p: argparse.ArgumentParser, run: bool) -> None:
    p.add_argument(
        "--configfile", nargs="+", default=[DEFAULT_CONFIG], metavar="FILE",
        help=f"config files, merged in order (default: {DEFAULT_CONFIG})",
    )  # fmt: skip
    p.add_argument("--set", default=None, metavar="JSON", help="a mapping merged over them")
    if run:
        p.add_argument("--model", required=True, help="the run: a name under `models:`, expanded")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnistbench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in STAGE_HELP.items():
        _config_args(sub.add_parser(name, help=text), run=name in ("train", "evaluate", "tune"))
    sub.choices["train"].add_argument(
        "--progress-fd", type=int, metavar="FD",
        help="an open file descriptor for one line per epoch (the Snakemake rule: 3, a copy of "
        "its terminal)",
    )  # fmt: skip
    sub.choices["ensemble"].add_argument(
        "--ensemble", required=True, help="its name, e.g. cnn-ensemble (seeds) or one of across"
    )
    report = sub.choices["report"]
    report.add_argument(
        "--failed", nargs="*", default=[], metavar="MODEL=STATUS",
        help="runs without a result and why (after a failed run): listed, not left out",
    )  # fmt: skip
    _use_args(sub)
    _tool_args(sub)
    return p


def _use_args(sub: Any) -> None:
    pr = sub.add_parser("predict", help="predict image files or the test set with a trained model")
    pr.add_argument("model", help="a results directory (results/<dataset>/models/<m>) or .ckpt")
    pr.add_argument("files", nargs="*", help="image files (PNG, JPEG, ...; any size or colour)")
    pr.add_argument("--test-set", action="store_true", help="predict the run's test split")
    pr.add_argument("--test-data", help="test.pt for --test-set (default: the run's own data)")
    pr.add_argument("--limit", type=int, help="with --test-set: only the first N images")
    pr.add_argument("--out", help="output file: .json for JSON, else CSV (default: CSV on stdout)")
    pr.add_argument("--grid", help="PNG grid of the inputs (as the model saw them) and predictions")
    ex = sub.add_parser("export", help="export a trained model to ONNX and check it")
    ex.add_argument("model", help="a results directory (results/<dataset>/models/<m>) or .ckpt")
    ex.add_argument("--out", required=True, help="the .onnx file to write")
    ex.add_argument("--report", help="JSON check report (default: check.json beside --out)")
    ex.add_argument("--test-data", help="test.pt to check on (default: the run's own data)")
    ex.add_argument("--n-images", type=int, default=1000, help="test images compared (1000)")
    ex.add_argument("--tolerance", type=float, default=1e-3, help="largest |logit difference|")


def _tool_args(sub: Any) -> None:
    dv = sub.add_parser("dvc-yaml", help="print dvc.yaml: the pipeline of the config files")
    dv.add_argument(
        "--configfile", nargs="+", default=[DEFAULT_CONFIG], metavar="FILE",
        help=f"the params file, then overlays merged over it (default: {DEFAULT_CONFIG})",
    )  # fmt: skip
    dp = sub.add_parser("dvc-params", help="`dvc exp run -S` options that apply an overlay file")
    dp.add_argument("overlay", help="a config file to merge over config/config.yaml")
    dt = sub.add_parser("docs-tables", help="rewrite the generated tables of figures of pages")
    dt.add_argument("pages", nargs="+", help="Markdown files with mnistbench docs-tables blocks")
    dt.add_argument("--check", action="store_true", help="change nothing; fail on a stale table")


def load(files: Sequence[str], overrides: str | None = None) -> dict[str, Any]:
    """The config files merged in order, ``overrides`` (JSON) over them, validated."""
    from mnistbench.config.load import deep_merge, load_config, validate_config

    config = load_config(*files)
    if overrides:
        try:
            config = deep_merge(config, json.loads(overrides))
        except (ValueError, AttributeError) as exc:
            raise MnistbenchError(f"--set {overrides!r} is no JSON mapping ({exc})") from None
    return validate_config(config)


def _run_stage(args: argparse.Namespace) -> None:
    from mnistbench import commands

    config = load(args.configfile, args.set)
    if args.command == "train":
        commands.train(config, args.model, args.threads, args.progress_fd)
    elif args.command in ("evaluate", "tune"):
        getattr(commands, args.command)(config, args.model, args.threads)
    elif args.command == "ensemble":
        commands.ensemble(config, args.ensemble)
    elif args.command == "report":
        commands.report(config, dict(item.split("=", 1) for item in args.failed))
    else:
        getattr(commands, args.command)(config)


def _predict(args: argparse.Namespace) -> None:
    from mnistbench.use.predict import format_rows, predict

    rows = predict(
        args.model, args.files, args.test_set, args.test_data, args.limit, args.out, args.grid
    )
    if not args.out:
        sys.stdout.write(format_rows(rows))
    failed = sum(1 for r in rows if r.get("error"))
    print(f"predicted {len(rows) - failed} of {len(rows)} inputs", file=sys.stderr)
    if rows and failed == len(rows):
        sys.exit(1)


def _export(args: argparse.Namespace) -> None:
    from mnistbench.use.export import export_and_check

    result = export_and_check(
        args.model, args.out, args.report, args.test_data, args.n_images, args.tolerance
    )
    print(json.dumps(result, indent=2))


def _dvc_yaml(args: argparse.Namespace) -> None:
    from mnistbench.pipeline.dvc import dvc_yaml

    sys.stdout.write(dvc_yaml(args.configfile))


def _dvc_params(args: argparse.Namespace) -> None:
    from mnistbench.pipeline.dvc import overrides

    print(" ".join(overrides(args.overlay)))


def _docs_tables(args: argparse.Namespace) -> None:
    from mnistbench.reporting.docs import check_page, rewrite_page

    for page in args.pages:
        (check_page if args.check else rewrite_page)(page)


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    **{name: _run_stage for name in STAGE_HELP},
    "predict": _predict,
    "export": _export,
    "dvc-yaml": _dvc_yaml,
    "dvc-params": _dvc_params,
    "docs-tables": _docs_tables,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Log to stderr; a user-fixable ``MnistbenchError`` is one line and exit status 2."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    args = _parser().parse_args(argv)
    try:
        with stopped_by_signals():
            COMMANDS[args.command](args)
    except MnistbenchError as exc:
        print(f"mnistbench error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        advice = storage_advice(exc)
        if advice is None:
            raise
        print(f"mnistbench error: {advice}", file=sys.stderr)
        sys.exit(2)


# What the user can do about a file system that refuses a write.
STORAGE_ERRORS = {
    errno.ENOSPC: "free some space there (or point results/ elsewhere), then run again",
    errno.EDQUOT: "your disk quota is used up: free some space, then run again",
    errno.EROFS: "the file system is read-only: run from a writable copy of the project",
    errno.EACCES: "you may not write there: fix its permissions or run as its owner",
    errno.EPERM: "you may not write there: fix its permissions or run as its owner",
}


def storage_advice(exc: OSError) -> str | None:
    """One line for a write the file system refused (disk full, read-only, permissions): the
    path, the reason and what to do; None for other errors. Every output is written under a
    temporary name and renamed when whole (``mnistbench.io``), so nothing half-written is left
    under a final name."""
    if exc.errno not in STORAGE_ERRORS:
        return None
    path = exc.filename or "(a file of this stage)"
    return (
        f"{path}: {os.strerror(exc.errno).lower()}; {STORAGE_ERRORS[exc.errno]}. "
        "Nothing half-written was kept under a final name."
    )


if __name__ == "__main__":
    main()
