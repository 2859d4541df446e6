# Tunes by successive halving (rnnlm.tune): each trial and rung is a job, each rung's choice a
# checkpoint, so the DAG unfolds rung by rung. The final runs are results/{tune}/{mode}/seed{N},
# trained by rule train at each mode's choice; the tables take them like any experiment's.


# A trial is a training run that also keeps its final state, from which the next rung's job of
# the same trial continues, and that records a divergence instead of failing the tune.
rule trial:
    input:
        vocab=vocab_file,
        train=array("train"),
        valid=array("valid"),
        previous=previous_state,
    output:
        params="results/{experiment}/{mode}/seed{seed}/model.params",
        config="results/{experiment}/{mode}/seed{seed}/model.json",
        metrics="results/{experiment}/{mode}/seed{seed}/metrics.csv",
        progress="results/{experiment}/{mode}/seed{seed}/progress.csv",
        summary="results/{experiment}/{mode}/seed{seed}/summary.json",
        state=directory("results/{experiment}/{mode}/seed{seed}/state"),
    log:
        logs("train/{experiment}/{mode}/seed{seed}.log"),
    benchmark:
        benchmarks("train/{experiment}/{mode}/seed{seed}.tsv")
    wildcard_constraints:
        experiment=NAME + r"[/]trial~[0-9]+[/]epochs~[0-9]+",
    threads: config["threads"]
    resources:
        **gpu_resources(),
        mem_mb=train_memory,
        runtime=train_runtime,
    params:
        hyper=hyperparameters,
        device=device_flags,
        out_dir=output_dir,
        previous=continue_flag,
        code=code_digest("train") + code_digest("vocab") + code_digest("limits"),
    shell:
        "rnnlm train --mode {wildcards.mode} --vocab {input.vocab:q} --train {input.train:q}"
        " --valid {input.valid:q} --out-dir {params.out_dir:q} {params.hyper}"
        " --keep-state {output.state:q} {params.previous} --record-divergence"
        " {params.device} --memory-mb {resources.mem_mb} --threads {threads}"
        " > {log:q} 2>&1"


ruleorder: trial > train


checkpoint halving:
    input:
        summaries=rung_trials,
    output:
        "results/tunes/{tune}/{mode}/rung{rung}.json",
    log:
        logs("tunes/{tune}/{mode}/rung{rung}.log"),
    resources:
        mem_mb=500,
        runtime=5,
    params:
        trials=trial_pairs,
        space=space_keys,
        rungs=lambda wildcards: PLAN.tunes[wildcards.tune].rungs,
        eta=lambda wildcards: PLAN.tunes[wildcards.tune].eta,
        code=code_digest("tune"),
    shell:
        "rnnlm halve --tune {wildcards.tune} --mode {wildcards.mode} --rung {wildcards.rung}"
        " --rungs {params.rungs} --eta {params.eta} --keys {params.space:q}"
        " --trials {params.trials:q} --out {output:q} > {log:q} 2>&1"


rule tune_table:
    input:
        rungs=rung_files,
    output:
        csv="results/tunes/{tune}.csv",
        md="results/tunes/{tune}.md",
        html=report(
            "results/tunes/{tune}.html",
            caption="../report/tune.rst",
            category="tunes",
            labels={"tune": "{tune}", "figure": "table"},
        ),
        plot=report(
            "results/tunes/{tune}.png",
            caption="../report/tune.rst",
            category="tunes",
            labels={"tune": "{tune}", "figure": "learning curves"},
        ),
    log:
        logs("tunes/{tune}.log"),
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        space=space_keys,
        code=code_digest("tune_report"),
    shell:
        "rnnlm tune-table --rungs {input.rungs:q} --keys {params.space:q} --csv {output.csv:q}"
        " --md {output.md:q} --html {output.html:q} --plot {output.plot:q} > {log:q} 2>&1"
