# Dynamic evaluation of a trained run (experiments whose `dynamic_eval` is set), with the cache on
# top where the experiment also sets `cache`: its own rule, so a trained run is never retrained
# to get it. Batch-1 streams of valid and test; gradient statistics at batch 100 of train, as
# dynamiceval.py reads them.
rule dynamic_eval:
    input:
        params=rules.train.output.params,
        config=rules.train.output.config,
        train=array("train", width=MS_BATCH),
        valid=array("valid", width=1),
        test=array("test", width=1),
        choice=tuned_choice,
    output:
        json="results/{experiment}/{mode}/seed{seed}/dynamic_eval.json",
        logps="results/{experiment}/{mode}/seed{seed}/dynamic_eval.npz",
    log:
        logs("dynamic_eval/{experiment}/{mode}/seed{seed}.log"),
    benchmark:
        benchmarks("dynamic_eval/{experiment}/{mode}/seed{seed}.tsv")
    threads: config["threads"]
    resources:
        mem_mb=dynamic_memory,
        runtime=120,
    params:
        run_dir=run_dir,
        grid=dynamic_eval_grid,
        code=code_digest("adapt"),
    shell:
        "rnnlm dynamic-eval --run-dir {params.run_dir:q} --train {input.train:q}"
        " --valid {input.valid:q} --test {input.test:q} {params.grid} --out {output.json:q}"
        " --threads {threads} --memory-mb {resources.mem_mb} > {log:q} 2>&1"


localrules:
    dynamic_eval_all,


rule dynamic_eval_all:
    input:
        run_paths(rules.dynamic_eval.output.json, PLAN.dynamic()),


# Perplexity over the test stream, static against dynamic, per experiment with dynamic evaluation
rule dynamic_plot:
    input:
        logps=dynamic_logps,
    output:
        report(
            "results/plots/dynamic_eval.{experiment}.png",
            caption="../report/dynamic_eval.rst",
            category="plots",
            subcategory="dynamic evaluation",
            labels={"experiment": "{experiment}"},
        ),
    log:
        logs("dynamic_plot/{experiment}.log"),
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_digest("plots"),
    shell:
        "rnnlm dynamic-plot --logps {input.logps:q} --experiment {wildcards.experiment:q}"
        " --out {output:q} > {log:q} 2>&1"
