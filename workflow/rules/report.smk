# The comparison of all runs: table (CSV + Markdown) and figures, flagged for the HTML report.


rule build_report:
    input:
        unpack(inputs("build_report")),
    output:
        **outputs(
            "build_report",
            csv=("comparison.rst", "1. Comparison", {"table": "comparison"}),
            curves=("learning_curves.rst", "2. Figures", {"figure": "learning curves"}),
            f1_params=("f1_vs_params.rst", "2. Figures", {"figure": "test F1 against parameters"}),
            f1_ci=("f1_ci.rst", "2. Figures", {"figure": "test F1 with 95% intervals"}),
            pareto=("pareto.rst", "2. Figures", {"figure": "test F1 against MACs and training time"}),
            gallery=("misclassified.rst", "2. Figures", {"figure": "misclassified digits of the best model"}),
            provenance_json=("provenance.rst", "1. Comparison", {"table": "provenance"}),
        ),
    params:
        cmd=command("build_report"),
        # the whole run's config, for the provenance (a change of any key rebuilds the report)
        config=config_params("build_report"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/build_report.log",
    benchmark:
        "results/{dataset}/benchmarks/build_report.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


# After a failed or stopped run (e.g. `--keep-going` with one model failing, or Ctrl-C): each
# failed job's error line, and the comparison of what there is, every run listed (the failed
# ones with their status) in results/<dataset>/partial/. The report's own outputs are never
# written outside its job: the next run plans exactly the jobs that are missing.
onerror:
    report_failure(log)
