# mnistbench: download MNIST, train every configured model, evaluate on the test set, compare.
#   snakemake --cores all                                  # the default experiment
#   snakemake --cores all --configfile config/smoke.yaml   # offline, on generated digits
#   snakemake --report results/mnist/report.html           # the HTML report (the run's
#                                                          # --configfile too: it says so at the end)
#   snakemake --cores all --config datasets='[mnist, fashion_mnist]'  # + results/datasets.md
import os
import sys

from snakemake.utils import min_version

min_version("8.20")

# Every path below is relative to the repository: from elsewhere, config/config.yaml and the
# scripts would not be found (and Snakemake would go on without that config file).
if os.path.realpath(os.getcwd()) != os.path.realpath(workflow.basedir):
    sys.exit(
        f"mnistbench error: run Snakemake in the repository, {workflow.basedir}: cd there, "
        f"or add -d {workflow.basedir} (the working directory is {os.getcwd()})"
    )


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/use.smk"


rule all:
    default_target: True
    input:
        TARGETS,


# SIGTERM or SIGINT to Snakemake stops the running jobs too, resumable (rules/common.smk).
onstart:
    forward_stop_signals()


# At the end: the comparison's top rows, and the paths of the table and the report.
onsuccess:
    show_comparison()
