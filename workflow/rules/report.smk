# The comparison of all models: table (CSV + Markdown) and figures, flagged for the HTML report.


rule build_report:
    input:
        summaries=expand("results/{{dataset}}/models/{model}/summary.json", model=MODELS),
        histories=expand("results/{{dataset}}/models/{model}/metrics.csv", model=MODELS),
        test=expand("results/{{dataset}}/models/{model}/test/metrics.json", model=MODELS),
        # per-image predictions: bootstrap intervals, McNemar's test, the gallery
        predictions=expand(
            "results/{{dataset}}/models/{model}/test/predictions.npz", model=MODELS
        ),
        # each training job's snapshot: its hardware and packages, for the provenance
        snapshots=expand("results/{{dataset}}/models/{model}/config.yaml", model=MODELS),
        test_split=rules.prepare_data.output.test,
        manifest=rules.download_data.output.manifest,
        code=[package_file(f) for f in ("reporting.py", "stats.py")],
    output:
        csv=report(
            "results/{dataset}/comparison.csv",
            caption="../report/comparison.rst",
            category="1. Comparison",
            labels={"table": "comparison"},
        ),
        md="results/{dataset}/comparison.md",
        # mean and std over seeds per model (`seeds:` in the config; one row per model)
        seeds="results/{dataset}/seeds.csv",
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
        f1_ci=report(
            "results/{dataset}/figures/f1_ci.png",
            caption="../report/f1_ci.rst",
            category="2. Figures",
            labels={"figure": "test F1 with 95% intervals"},
        ),
        pareto=report(
            "results/{dataset}/figures/pareto.png",
            caption="../report/pareto.rst",
            category="2. Figures",
            labels={"figure": "test F1 against MACs and training time"},
        ),
        gallery=report(
            "results/{dataset}/figures/misclassified.png",
            caption="../report/misclassified.rst",
            category="2. Figures",
            labels={"figure": "misclassified digits of the best model"},
        ),
        provenance_csv="results/{dataset}/provenance.csv",
        provenance_json=report(
            "results/{dataset}/provenance.json",
            caption="../report/provenance.rst",
            category="1. Comparison",
            labels={"table": "provenance"},
        ),
    params:
        model_dirs=expand("results/{{dataset}}/models/{model}", model=MODELS),
        # the whole run's config, for the provenance (a change of any key rebuilds the report)
        config=json.dumps(config, sort_keys=True),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/build_report.log",
    benchmark:
        "results/{dataset}/benchmarks/build_report.tsv"
    shell:
        "python workflow/scripts/report.py --model-dirs {params.model_dirs} --csv {output.csv}"
        " --md {output.md} --seeds-csv {output.seeds} --summary {output.summary} --curves {output.curves}"
        " --f1-params {output.f1_params} --f1-ci {output.f1_ci} --pareto {output.pareto}"
        " --gallery {output.gallery} --test {input.test_split} --manifest {input.manifest}"
        " --provenance-csv {output.provenance_csv} --provenance-json {output.provenance_json}"
        " --run-config {params.config:q} > {log} 2>&1"


# After a failed run (e.g. `--keep-going` with one model failing), the table must not look
# complete, nor keep an earlier run's numbers: it is rebuilt listing every model, the failed
# ones with status "failed (see <log>)". It is dated 1970, so the next run rebuilds it.
onerror:
    partial_report(log)
