rule predict:
    input:
        params=rules.train.output.params,
        config=rules.train.output.config,
        vocab=vocab_file,
    output:
        "results/{experiment}/{mode}/seed{seed}/predictions.json",
    log:
        logs("predict/{experiment}/{mode}/seed{seed}.log"),
    benchmark:
        benchmarks("predict/{experiment}/{mode}/seed{seed}.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run_dir=run_dir,
        prompts=prompt_args,
        top_k=config["predict"]["top_k"],
        corpus=corpus_name,
        code=code_digest("predict"),
    shell:
        "rnnlm predict --run-dir {params.run_dir:q} --vocab {input.vocab:q} --prompts {params.prompts}"
        " --top-k {params.top_k} --corpus {params.corpus:q} --threads {threads} --out {output:q}"
        " > {log:q} 2>&1"


rule compare_predictions:
    input:
        run_paths(rules.predict.output[0], PLAN.predicted()),
    output:
        md="results/predictions.md",
        html=report(
            "results/predictions.html",
            caption="../report/predictions.rst",
            category="predictions",
            labels={"table": "next words"},
        ),
    log:
        logs("compare_predictions.log"),
    benchmark:
        benchmarks("compare_predictions.tsv")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_digest("tables"),
    shell:
        "rnnlm compare-predictions --inputs {input:q} --md {output.md:q} --html {output.html:q}"
        " > {log:q} 2>&1"
