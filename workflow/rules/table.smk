rule table:
    input:
        summaries=run_paths(rules.train.output.summary),
        tests=run_paths(rules.evaluate.output.test),
        caches=run_paths(rules.cache.output.cache, PLAN.cached()),
        dynamics=run_paths(rules.dynamic_eval.output.json, PLAN.dynamic()),
    output:
        runs_csv="results/runs.csv",
        runs_html=report(
            "results/runs.html",
            caption="../report/runs.rst",
            category="tables",
            labels={"table": "every run"},
        ),
        csv="results/perplexity.csv",
        md="results/perplexity.md",
        html=report(
            "results/perplexity.html",
            caption="../report/table.rst",
            category="tables",
            labels={"table": "perplexity by mode"},
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
        corpus=experiment_pairs("--corpus", PLAN.corpus_names()),
        published=experiment_pairs("--published", PLAN.published),
        tuned=tuned_flag(),
        code=code_digest("tables"),
    shell:
        "rnnlm table --runs {params.runs:q} {params.corpus} {params.published}"
        " --runs-csv {output.runs_csv:q} --runs-html {output.runs_html:q} --csv {output.csv:q}"
        " --md {output.md:q} --html {output.html:q} --caches {input.caches:q} --dynamics {input.dynamics:q} {params.tuned} > {log:q} 2>&1"


rule compare:
    input:
        summaries=run_paths(rules.train.output.summary),
        tests=run_paths(rules.evaluate.output.test),
        caches=run_paths(rules.cache.output.cache, PLAN.cached()),
        dynamics=run_paths(rules.dynamic_eval.output.json, PLAN.dynamic()),
    output:
        csv="results/comparisons.csv",
        md="results/comparisons.md",
        html=report(
            "results/comparisons.html",
            caption="../report/comparisons.rst",
            category="tables",
            labels={"table": "comparisons"},
        ),
    log:
        logs("compare.log"),
    benchmark:
        benchmarks("compare.tsv")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=run_dirs,
        corpus=experiment_pairs("--corpus", PLAN.corpus_names()),
        tuned=tuned_flag(),
        code=code_digest("tables"),
    shell:
        "rnnlm compare --runs {params.runs:q} {params.corpus} {params.tuned} --csv {output.csv:q}"
        " --md {output.md:q} --html {output.html:q} --caches {input.caches:q}"
        " --dynamics {input.dynamics:q} > {log:q} 2>&1"


rule sweep:
    input:
        summaries=sweep_runs(rules.train.output.summary),
        tests=sweep_runs(rules.evaluate.output.test),
    output:
        csv="results/sweeps/{sweep}.csv",
        md="results/sweeps/{sweep}.md",
        html=report(
            "results/sweeps/{sweep}.html",
            caption="../report/sweep.rst",
            category="sweeps",
            labels={"sweep": "{sweep}", "figure": "table"},
        ),
        plot=report(
            "results/plots/sweep.{sweep}.png",
            caption="../report/sweep_plot.rst",
            category="sweeps",
            labels={"sweep": "{sweep}", "figure": "test perplexity by key"},
        ),
    log:
        logs("sweep/{sweep}.log"),
    benchmark:
        benchmarks("sweep/{sweep}.tsv")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=run_dirs,
        code=code_digest("tables") + code_digest("plots"),
    shell:
        "rnnlm sweep --name {wildcards.sweep:q} --runs {params.runs:q} --csv {output.csv:q}"
        " --md {output.md:q} --html {output.html:q} --plot {output.plot:q} > {log:q} 2>&1"


rule provenance:
    input:
        summaries=run_paths(rules.train.output.summary),
        sources=corpus_paths(rules.download.output.source),
    output:
        csv="results/provenance.csv",
        html=report(
            "results/provenance.html",
            caption="../report/provenance.rst",
            category="tables",
            labels={"table": "provenance"},
        ),
    log:
        logs("provenance.log"),
    benchmark:
        benchmarks("provenance.tsv")
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=run_dirs,
        corpus=experiment_pairs("--corpus", PLAN.corpus_names()),
        code=code_digest("tables"),
    shell:
        "rnnlm provenance --runs {params.runs:q} {params.corpus} --sources {input.sources:q}"
        " --csv {output.csv:q} --html {output.html:q} > {log:q} 2>&1"
