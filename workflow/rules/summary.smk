# With `datasets: [...]`: the same models' test F1 on every data set, in one table.


rule summarize_datasets:
    input:
        unpack(inputs("summarize_datasets")),
    output:
        **outputs(
            "summarize_datasets",
            csv=("datasets.rst", "1. Comparison", {"table": "across data sets"}),
        ),
    params:
        cmd=command("summarize_datasets"),
        config=config_params("summarize_datasets"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/summarize_datasets.log",
    benchmark:
        "results/benchmarks/summarize_datasets.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"
