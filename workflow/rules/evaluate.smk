# Each trained model on the official test set.


rule evaluate_model:
    input:
        ckpt=rules.train_model.output.ckpt,
        test=rules.prepare_data.output.test,
        code=package_file("evaluation.py"),
    output:
        metrics="results/{dataset}/models/{model}/test/metrics.json",
        confusion="results/{dataset}/models/{model}/test/confusion.csv",
        confusion_png=report(
            "results/{dataset}/models/{model}/test/confusion.png",
            caption="../report/confusion.rst",
            category="3. Confusion matrices",
            labels={"model": "{model}"},
        ),
        predictions="results/{dataset}/models/{model}/test/predictions.npz",
        # actual,predicted per test image: the long form DVC's confusion plot reads
        predictions_csv="results/{dataset}/models/{model}/test/predictions.csv",
    params:
        out=lambda wildcards, output: os.path.dirname(output.metrics),
        batch_size=config["evaluate"]["batch_size"],
    conda:
        "../../envs/mnistbench.yaml"
    log:
        "logs/{dataset}/evaluate_model/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_model/{model}.tsv"
    threads: 1
    shell:
        "python workflow/scripts/evaluate.py --checkpoint {input.ckpt} --test {input.test}"
        " --out {params.out} --model {wildcards.model} --batch-size {params.batch_size}"
        " --threads {threads} > {log} 2>&1"
