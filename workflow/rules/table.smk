rule table:
    input:
        summaries=run_paths(rules.train.output.summary),
        tests=run_paths(rules.evaluate.output.test),
    output:
        csv=report(
            "results/perplexity.csv",
            caption="../report/table.rst",
            category="table",
            labels={"table": "perplexity", "format": "csv"},
        ),
        md=report(
            "results/perplexity.md",
            caption="../report/table.rst",
            category="table",
            labels={"table": "perplexity", "format": "markdown"},
        ),
    log:
        logs("table.log"),
    benchmark:
        benchmarks("table.tsv")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=run_dirs,
        published=experiment_pairs("--published", PLAN.published),
        code=code_digest("report"),
    shell:
        "rnnlm table --runs {params.runs:q} --csv {output.csv:q} --md {output.md:q}"
        " {params.published} > {log:q} 2>&1"
