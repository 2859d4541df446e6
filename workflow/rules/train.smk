# The resumable checkpoint in the run folder's checkpoint/ is deliberately not an
# output: Snakemake deletes declared outputs before rerunning a job, and the resume needs it.
rule train:
    input:
        vocab=vocab_file,
        train=array("train"),
        valid=array("valid"),
        choice=tuned_choice,
    output:
        params="results/{experiment}/{mode}/seed{seed}/model.params",
        config="results/{experiment}/{mode}/seed{seed}/model.json",
        metrics="results/{experiment}/{mode}/seed{seed}/metrics.csv",
        progress="results/{experiment}/{mode}/seed{seed}/progress.csv",
        summary="results/{experiment}/{mode}/seed{seed}/summary.json",
    log:
        logs("train/{experiment}/{mode}/seed{seed}.log"),
    benchmark:
        benchmarks("train/{experiment}/{mode}/seed{seed}.tsv")
    threads: config["threads"]
    resources:
        **gpu_resources(),
        mem_mb=train_memory,
        runtime=train_runtime,
    params:
        hyper=hyperparameters,
        device=device_flags,
        out_dir=output_dir,
        code=code_digest("train") + code_digest("vocab") + code_digest("limits"),
    shell:
        "rnnlm train --mode {wildcards.mode} --vocab {input.vocab:q} --train {input.train:q}"
        " --valid {input.valid:q} --out-dir {params.out_dir:q} {params.hyper}"
        " {params.device} --memory-mb {resources.mem_mb} --threads {threads}"
        " > {log:q} 2>&1"


# A run whose training equals an earlier run's (rnnlm.plan.runs.Plan.shared) is not trained again:
# `share` copies the earlier run's training outputs; {shared} matches only those runs' folders.
ruleorder: share > train


rule share:
    input:
        unpack(trained_as),
    output:
        params="results/{shared}/model.params",
        config="results/{shared}/model.json",
        metrics="results/{shared}/metrics.csv",
        progress="results/{shared}/progress.csv",
        summary="results/{shared}/summary.json",
    log:
        logs("share/{shared}.log"),
    benchmark:
        benchmarks("share/{shared}.tsv")
    wildcard_constraints:
        shared=shared_folders(),
    params:
        trained=trained_dir,
        out_dir=output_dir,
        code=code_digest("share"),
    shell:
        "rnnlm share --from {params.trained:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


localrules:
    share,  # a copy of files, not worth a cluster job
    train_all,


rule train_all:
    input:
        run_paths(rules.train.output.summary),
