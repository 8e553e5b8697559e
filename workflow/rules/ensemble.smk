# Each ensemble (with seeds: one per model, <model>-ensemble; and those ensemble.across names):
# members and weights chosen on the validation split, scored on the test set.


rule build_ensemble:
    input:
        unpack(inputs("build_ensemble")),
    output:
        **outputs("build_ensemble"),
    params:
        cmd=command("build_ensemble"),
        config=config_params("build_ensemble"),
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/build_ensemble/{ensemble}.log",
    benchmark:
        "results/{dataset}/benchmarks/build_ensemble/{ensemble}.tsv"
    threads: 1
    shell:
        "{params.cmd} > {log} 2>&1"
