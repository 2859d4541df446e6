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
        mem_mb=4000,
        runtime=train_runtime,
    params:
        hyper=hyperparameters,
        device=device_flags,
        out_dir=output_dir,
        code=code_digest("train"),
    shell:
        "rnnlm train --mode {wildcards.mode} --vocab {input.vocab:q} --train {input.train:q}"
        " --valid {input.valid:q} --out-dir {params.out_dir:q} {params.hyper}"
        " {params.device} --threads {threads} > {log:q} 2>&1"


localrules:
    train_all,


rule train_all:
    input:
        run_paths(rules.train.output.summary),
