# Using what was trained, on request only (not part of `rule all`): ONNX export checked with
# onnxruntime, and the learning-rate / batch-size finders.
#   snakemake --cores all results/mnist/models/cnn/export/model.onnx
#   snakemake --cores all results/mnist/models/cnn/tune/suggestion.json


rule export_model:
    input:
        unpack(inputs("export_model")),
    output:
        **outputs("export_model"),
    params:
        cmd=command("export_model"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/export_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/export_model/{model}.tsv"
    threads: 1
    shell:
        "{params.cmd} > {log} 2>&1"


rule tune_model:
    input:
        unpack(inputs("tune_model")),
    output:
        **outputs(
            "tune_model",
            plot=("lr_finder.rst", "4. Tuning", {"model": "{model}"}),
        ),
    params:
        cmd=command("tune_model"),
        config=config_params("tune_model"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/tune_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/tune_model/{model}.tsv"
    threads: 2
    shell:
        "{params.cmd} --threads {threads} > {log} 2>&1"
