# One training job per run: each configured model, or each seed or sweep point of one.


rule train_model:
    input:
        unpack(inputs("train_model")),
    output:
        **outputs("train_model"),
    params:
        cmd=command("train_model"),
        launch=launcher,
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
    # Everything the job prints goes to its log; one line per epoch also to the terminal,
    # through a copy of Snakemake's stderr as descriptor 3 (src/mnistbench/progress.py).
    # `launch`: empty, or `srun ` under a SLURM profile that gives the job several tasks.
    shell:
        "{params.launch}{params.cmd} --threads {threads} --progress-fd 3 3>&2 > {log} 2>&1"
