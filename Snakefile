# rnnlm-pipeline: word-level RNN language models on Penn Treebank, every mode, tables, plots.
# Run from the repository root: snakemake --cores all   (README: clusters, mirrors, report)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# The config checked into the plan of runs (rnnlm.plan), wildcard constraints, code digests;
# then paths and input functions (what each job reads), params and resources (what it is told).
include: "workflow/rules/common.smk"
include: "workflow/rules/paths.smk"
include: "workflow/rules/params.smk"


report: "workflow/report/workflow.rst"


# Stages in data order: rule = `rnnlm` subcommand = package module = report category.
include: "workflow/rules/download.smk"
include: "workflow/rules/vocab.smk"
include: "workflow/rules/batchify.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/cache.smk"
include: "workflow/rules/dynamic_eval.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/table.smk"
include: "workflow/rules/plots.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        final_outputs(),
