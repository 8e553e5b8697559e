"""The ``mnistbench`` command: use what the workflow trained.

    mnistbench predict results/mnist/models/cnn digit.png photo.jpg --out preds.csv
    mnistbench predict results/mnist/models/cnn --test-set --limit 32 --grid grid.png
    mnistbench export results/mnist/models/cnn --out cnn.onnx

Exit status: 0 on success (``predict``: at least one input predicted); 1 when ``predict`` could
read none of the given files (each has its error in the output rows and on stderr); 2 on a
user error (a model, file or option that cannot be used), printed as one ``mnistbench error:``
line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mnistbench.entry import run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnistbench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("predict", help="predict image files or the test set with a trained model")
    pr.add_argument("model", help="a results directory (results/<dataset>/models/<m>) or .ckpt")
    pr.add_argument("files", nargs="*", help="image files (PNG, JPEG, ...; any size or colour)")
    pr.add_argument("--test-set", action="store_true", help="predict the run's test split")
    pr.add_argument(
        "--test-data", help="test.pt to use with --test-set (default: the run's own data)"
    )
    pr.add_argument("--limit", type=int, help="with --test-set: only the first N images")
    pr.add_argument("--out", help="output file: .json for JSON, else CSV (default: CSV on stdout)")
    pr.add_argument("--grid", help="PNG grid of the inputs (as the model saw them) and predictions")

    ex = sub.add_parser("export", help="export a trained model to ONNX and check it")
    ex.add_argument("model", help="a results directory (results/<dataset>/models/<m>) or .ckpt")
    ex.add_argument("--out", required=True, help="the .onnx file to write")
    ex.add_argument("--report", help="JSON check report (default: check.json beside --out)")
    ex.add_argument("--test-data", help="test.pt to check on (default: the run's own data)")
    ex.add_argument("--n-images", type=int, default=1000, help="test images compared (1000)")
    ex.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest accepted |logit difference|"
    )
    return p


def _main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "predict":
        from mnistbench.predict import format_rows, predict

        rows = predict(
            args.model, args.files, args.test_set, args.test_data, args.limit, args.out, args.grid
        )
        if not args.out:
            sys.stdout.write(format_rows(rows))
        failed = sum(1 for r in rows if r.get("error"))
        print(f"predicted {len(rows) - failed} of {len(rows)} inputs", file=sys.stderr)
        if rows and failed == len(rows):
            sys.exit(1)
    elif args.command == "export":
        from mnistbench.export import export_and_check

        result = export_and_check(
            args.model, args.out, args.report, args.test_data, args.n_images, args.tolerance
        )
        print(json.dumps(result, indent=2))


def main(argv: Sequence[str] | None = None) -> None:
    run(_main, argv)


if __name__ == "__main__":
    main()
