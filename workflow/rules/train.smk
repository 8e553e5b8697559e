# One training job per run: each configured model, or each seed or sweep point of one.


rule train_model:
    input:
        unpack(inputs("train_model")),
    output:
        **outputs("train_model"),
    params:
        cmd=command("train_model"),
        config=config_params("train_model"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/train_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/train_model/{model}.tsv"
    threads: train_threads
    priority: train_priority
    resources:
        gpu=gpus_of,
    shell:
        "{params.cmd} --threads {threads} > {log} 2>&1"
