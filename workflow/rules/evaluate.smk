# Each trained run on the official test set.


rule evaluate_model:
    input:
        unpack(inputs("evaluate_model")),
    output:
        **outputs(
            "evaluate_model",
            confusion_png=("confusion.rst", "3. Confusion matrices", {"model": "{model}"}),
        ),
    params:
        cmd=command("evaluate_model"),
        config=config_params("evaluate_model"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/evaluate_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_model/{model}.tsv"
    threads: 1
    shell:
        "{params.cmd} --threads {threads} > {log} 2>&1"
