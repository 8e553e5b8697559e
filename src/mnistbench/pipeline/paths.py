"""Where each stage of the pipeline (``mnistbench.pipeline.table``) writes: its outputs by name,
with the ``{dataset}``, ``{model}`` and ``{ensemble}`` wildcards of the Snakemake rules."""

from __future__ import annotations

from mnistbench.data.manifest import MANIFEST_NAME, MNIST_FILES

RUN = "results/{dataset}/models/{model}"
ENSEMBLE = "results/{dataset}/ensembles/{ensemble}"
PREPARED = "data/{dataset}/prepared"

# Each stage's outputs by name, with the {dataset} and {model} wildcards of the Snakemake rules.
OUTPUTS: dict[str, dict[str, str]] = {
    "download_data": {
        **{key: f"data/{{dataset}}/raw/{name}" for key, (name, _) in MNIST_FILES.items()},
        "manifest": f"data/{{dataset}}/raw/{MANIFEST_NAME}",
    },
    "prepare_data": {
        **{split: f"{PREPARED}/{split}.pt" for split in ("train", "val", "test")},
        "stats": f"{PREPARED}/stats.json",
    },
    "train_model": {
        "ckpt": f"{RUN}/model.ckpt",
        "metrics": f"{RUN}/metrics.csv",
        "config": f"{RUN}/config.yaml",
        "summary": f"{RUN}/summary.json",
        # DVCLive's last value and per-step series of each metric (mnistbench.train.loggers)
        "live_metrics": f"{RUN}/dvclive/metrics.json",
        "live_plots": f"{RUN}/dvclive/plots",
    },
    "evaluate_model": {
        "metrics": f"{RUN}/test/metrics.json",  # numbers only: DVC's metrics
        "details": f"{RUN}/test/details.json",  # the rest: names, paths, per-class F1
        "confusion": f"{RUN}/test/confusion.csv",
        "confusion_png": f"{RUN}/test/confusion.png",
        "predictions": f"{RUN}/test/predictions.npz",
        "predictions_csv": f"{RUN}/test/predictions.csv",  # what DVC's confusion plot reads
        "val_predictions": f"{RUN}/val/predictions.npz",  # what ensembles are chosen on
    },
    "build_ensemble": {
        "metrics": f"{ENSEMBLE}/test/metrics.json",
        "predictions": f"{ENSEMBLE}/test/predictions.npz",
    },
    "build_report": {
        "csv": "results/{dataset}/comparison.csv",
        "md": "results/{dataset}/comparison.md",
        "seeds": "results/{dataset}/seeds.csv",
        "scores_table": "results/{dataset}/tables/scores.csv",  # the report's front page
        "costs_table": "results/{dataset}/tables/costs.csv",
        "summary": "results/{dataset}/summary.json",
        "curves": "results/{dataset}/figures/learning_curves.png",
        "f1_params": "results/{dataset}/figures/f1_vs_params.png",
        "f1_ci": "results/{dataset}/figures/f1_ci.png",
        "pareto": "results/{dataset}/figures/pareto.png",
        "gallery": "results/{dataset}/figures/misclassified.png",
        "provenance_csv": "results/{dataset}/provenance.csv",
        "provenance_json": "results/{dataset}/provenance.json",
    },
    "summarize_datasets": {"csv": "results/datasets.csv", "md": "results/datasets.md"},
    "export_model": {"onnx": f"{RUN}/export/model.onnx", "check": f"{RUN}/export/check.json"},
    "tune_model": {
        "suggestion": f"{RUN}/tune/suggestion.json",
        "plot": f"{RUN}/tune/lr_finder.png",
    },
}
# After a failed or stopped run, the comparison of what there is goes here, never over the
# report's own outputs: Snakemake's record of them stays true, so the next run plans exactly the
# missing jobs (``stages.report``; removed by the next complete report).
PARTIAL = "results/{dataset}/partial"

# Outputs that are directories (Snakemake's directory(); DVC tracks them whole).
DIRECTORIES = {("train_model", "live_plots")}


def outputs(rule: str, dataset: str, run: str | None = None) -> dict[str, str]:
    """The stage's output paths; ``run`` is its run, or its ensemble for build_ensemble."""
    return {k: v.format(dataset=dataset, model=run, ensemble=run) for k, v in OUTPUTS[rule].items()}


def partial_outputs(dataset: str) -> dict[str, str]:
    """The report's outputs for a failed or stopped run: the same names under ``PARTIAL``, but
    for DVC's metric summary (that of a complete run only)."""
    root, prefix = PARTIAL.format(dataset=dataset), f"results/{dataset}/"
    full = outputs("build_report", dataset)
    return {k: f"{root}/{v.removeprefix(prefix)}" for k, v in full.items() if k != "summary"}
