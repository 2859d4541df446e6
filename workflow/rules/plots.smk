rule plots:
    input:
        summaries=run_paths(rules.train.output.summary),
        metrics=run_paths(rules.train.output.metrics),
        progress=run_paths(rules.train.output.progress),
        tests=run_paths(rules.evaluate.output.test),
    output:
        curves=[
            report(
                f"results/plots/learning_curves.{name}.png",
                caption="../report/learning_curves.rst",
                category="plots",
                subcategory="learning curves",
                labels={"experiment": name},
            )
            for name in PLAN.plain_experiments()
        ],
        test_ppl=report(
            "results/plots/test_ppl.png",
            caption="../report/test_ppl.rst",
            category="plots",
            subcategory="by mode",
            labels={"figure": "test perplexity"},
        ),
        throughput=report(
            "results/plots/throughput.png",
            caption="../report/throughput.rst",
            category="plots",
            subcategory="by mode",
            labels={"figure": "throughput"},
        ),
    log:
        logs("plots.log"),
    benchmark:
        benchmarks("plots.tsv")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=run_dirs,
        out_dir=output_dir,
        code=code_digest("plots"),
    shell:
        "rnnlm plots --runs {params.runs:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
