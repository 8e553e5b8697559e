# Using what was trained, on request only (not part of `rule all`): ONNX export checked with
# onnxruntime, and the learning-rate / batch-size finders.
#   snakemake --cores all results/mnist/models/cnn/export/model.onnx
#   snakemake --cores all results/mnist/models/cnn/tune/suggestion.json


rule export_model:
    input:
        ckpt=rules.train_model.output.ckpt,
        test=rules.prepare_data.output.test,
        code=package_file("export.py"),
    output:
        onnx="results/{dataset}/models/{model}/export/model.onnx",
        check="results/{dataset}/models/{model}/export/check.json",
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/export_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/export_model/{model}.tsv"
    threads: 1
    shell:
        "python -m mnistbench export {input.ckpt} --out {output.onnx} --report {output.check}"
        " --test-data {input.test} > {log} 2>&1"


rule tune_model:
    input:
        train=rules.prepare_data.output.train,
        val=rules.prepare_data.output.val,
        stats=rules.prepare_data.output.stats,
        arch=model_code,
        code=[
            package_file(f)
            for f in ("tuning.py", "training.py", "module.py", "datamodule.py", "hardware.py")
        ],
    output:
        suggestion="results/{dataset}/models/{model}/tune/suggestion.json",
        plot=report(
            "results/{dataset}/models/{model}/tune/lr_finder.png",
            caption="../report/lr_finder.rst",
            category="4. Tuning",
            labels={"model": "{model}"},
        ),
    params:
        settings=model_settings,
        prepared=lambda wildcards, input: os.path.dirname(input.train),
        out=lambda wildcards, output: os.path.dirname(output.suggestion),
        tune=(
            f"--lr-steps {config['tune']['lr_steps']} --min-lr {config['tune']['min_lr']}"
            f" --max-lr {config['tune']['max_lr']} --batch-trials {config['tune']['batch_trials']}"
        ),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/tune_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/tune_model/{model}.tsv"
    threads: 2
    shell:
        "python workflow/scripts/tune.py --settings {params.settings:q}"
        " --prepared {params.prepared} --out {params.out} --threads {threads} {params.tune}"
        " > {log} 2>&1"
