# Raw data: the four MNIST IDX files (downloaded, copied from data.local_dir, or generated),
# then the compact tensors and the fixed validation split every model shares.


rule download_data:
    input:
        unpack(inputs("download_data")),
    output:
        **outputs("download_data"),
    params:
        cmd=command("download_data"),
        config=config_params("download_data"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/download_data.log",
    shell:
        "{params.cmd} > {log} 2>&1"


# A checkpoint: once it has run, Snakemake decides every later job again, by the content of
# the prepared data (by_content() in common.smk).
checkpoint prepare_data:
    input:
        unpack(inputs("prepare_data")),
    output:
        **outputs("prepare_data"),
    params:
        cmd=command("prepare_data"),
        config=config_params("prepare_data"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/prepare_data.log",
    benchmark:
        "results/{dataset}/benchmarks/prepare_data.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"
