# The resumable checkpoint in results/{experiment}/{mode}/checkpoint/ is deliberately not an
# output: Snakemake deletes declared outputs before rerunning a job, and the resume needs it.
rule train:
    input:
        vocab=rules.vocab.output.vocab,
        train=train_array,
        valid=eval_array("valid"),
    output:
        params="results/{experiment}/{mode}/model.params",
        config="results/{experiment}/{mode}/model.json",
        metrics="results/{experiment}/{mode}/metrics.csv",
        summary="results/{experiment}/{mode}/summary.json",
    log:
        logs("train/{experiment}/{mode}.log"),
    benchmark:
        benchmarks("train/{experiment}/{mode}.tsv")
    threads: config["threads"]
    resources:
        **gpu_resources(),
        mem_mb=4000,
        runtime=train_runtime,
    params:
        hyper=train_flags,
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
