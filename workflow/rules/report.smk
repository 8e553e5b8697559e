# The comparison of all models: table (CSV + Markdown) and figures, flagged for the HTML report.


rule build_report:
    input:
        summaries=expand("results/{{dataset}}/models/{model}/summary.json", model=MODELS),
        histories=expand("results/{{dataset}}/models/{model}/metrics.csv", model=MODELS),
        test=expand("results/{{dataset}}/models/{model}/test/metrics.json", model=MODELS),
        code=package_file("reporting.py"),
    output:
        csv=report(
            "results/{dataset}/comparison.csv",
            caption="../report/comparison.rst",
            category="1. Comparison",
            labels={"table": "comparison"},
        ),
        md="results/{dataset}/comparison.md",
        # per-model test metrics as JSON: DVC's comparison metric (dvc metrics show/diff)
        summary="results/{dataset}/summary.json",
        curves=report(
            "results/{dataset}/figures/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="2. Figures",
            labels={"figure": "learning curves"},
        ),
        f1_params=report(
            "results/{dataset}/figures/f1_vs_params.png",
            caption="../report/f1_vs_params.rst",
            category="2. Figures",
            labels={"figure": "test F1 against parameters"},
        ),
    params:
        model_dirs=expand("results/{{dataset}}/models/{model}", model=MODELS),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/build_report.log",
    benchmark:
        "results/{dataset}/benchmarks/build_report.tsv"
    shell:
        "python workflow/scripts/report.py --model-dirs {params.model_dirs} --csv {output.csv}"
        " --md {output.md} --summary {output.summary} --curves {output.curves}"
        " --f1-params {output.f1_params} > {log} 2>&1"


# After a failed run (e.g. `--keep-going` with one model failing), the table must not look
# complete, nor keep an earlier run's numbers: it is rebuilt listing every model, the failed
# ones with status "failed (see <log>)". It is dated 1970, so the next run rebuilds it.
onerror:
    partial_report(log)
