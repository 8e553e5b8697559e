# One training job per configured model (the {model} wildcard).


rule train_model:
    input:
        train=rules.prepare_data.output.train,
        val=rules.prepare_data.output.val,
        stats=rules.prepare_data.output.stats,
        arch=model_code,
        code=[
            package_file(f)
            for f in ("training.py", "module.py", "datamodule.py", "hardware.py", "averaging.py")
        ],
    output:
        ckpt="results/{dataset}/models/{model}/model.ckpt",
        metrics="results/{dataset}/models/{model}/metrics.csv",
        config="results/{dataset}/models/{model}/config.yaml",
        summary="results/{dataset}/models/{model}/summary.json",
    params:
        settings=model_settings,
        prepared=lambda wildcards, input: os.path.dirname(input.train),
        out=model_dir,
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/train_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/train_model/{model}.tsv"
    threads: train_threads
    resources:
        gpu=gpus_of,
    shell:
        "python workflow/scripts/train.py --settings {params.settings:q}"
        " --prepared {params.prepared} --out {params.out} --threads {threads} > {log} 2>&1"
