# Raw data: the four MNIST IDX files (downloaded, copied from data.local_dir, or generated),
# then the compact tensors and the fixed validation split every model shares.


rule download_data:
    output:
        train_images="data/{dataset}/raw/train-images-idx3-ubyte.gz",
        train_labels="data/{dataset}/raw/train-labels-idx1-ubyte.gz",
        test_images="data/{dataset}/raw/t10k-images-idx3-ubyte.gz",
        test_labels="data/{dataset}/raw/t10k-labels-idx1-ubyte.gz",
        manifest="data/{dataset}/raw/manifest.json",
    params:
        source=data_identity,
        fetch=fetch_settings,
        out=lambda wildcards, output: os.path.dirname(output.manifest),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/download_data.log",
    shell:
        "python workflow/scripts/download.py --out {params.out} {params.source} {params.fetch}"
        " > {log} 2>&1"


rule prepare_data:
    input:
        raw=rules.download_data.output,
        code=package_file("data/prepare.py"),
    output:
        train="data/{dataset}/prepared/train.pt",
        val="data/{dataset}/prepared/val.pt",
        test="data/{dataset}/prepared/test.pt",
        stats="data/{dataset}/prepared/stats.json",
    params:
        raw=lambda wildcards, input: os.path.dirname(input.raw[0]),
        out=lambda wildcards, output: os.path.dirname(output.stats),
        val_size=config["data"]["val_size"],
        split_seed=config["data"]["split_seed"],
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/prepare_data.log",
    benchmark:
        "results/{dataset}/benchmarks/prepare_data.tsv"
    shell:
        "python workflow/scripts/prepare.py --raw {params.raw} --out {params.out}"
        " --val-size {params.val_size} --split-seed {params.split_seed} > {log} 2>&1"
