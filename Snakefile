# mnistbench: download MNIST, train every configured model, evaluate on the test set, compare.
#   snakemake --cores all                                  # the default experiment
#   snakemake --cores all --configfile config/smoke.yaml   # offline, on generated digits
#   snakemake --report results/report.html                 # the HTML report
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/use.smk"


rule all:
    default_target: True
    input:
        STAGES[("build_report", None)].outs["csv"],
        STAGES[("build_report", None)].outs["md"],
