# The continuous cache over a trained run (experiments whose `cache` is set): its own rule, so a
# trained run is never retrained to get it. Batch-1 streams of valid and test, as pointer.py reads
# them; on the CPU, where numpy computes the grid.
rule cache:
    input:
        params=rules.train.output.params,
        config=rules.train.output.config,
        valid=array("valid", width=1),
        test=array("test", width=1),
        choice=tuned_choice,
    output:
        cache="results/{experiment}/{mode}/seed{seed}/cache.json",
    log:
        logs("cache/{experiment}/{mode}/seed{seed}.log"),
    benchmark:
        benchmarks("cache/{experiment}/{mode}/seed{seed}.tsv")
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        run_dir=run_dir,
        grid=cache_grid,
        code=code_digest("adapt"),
    shell:
        "rnnlm cache --run-dir {params.run_dir:q} --valid {input.valid:q} --test {input.test:q}"
        " {params.grid} --out {output.cache:q} --threads {threads} > {log:q} 2>&1"


localrules:
    cache_all,


rule cache_all:
    input:
        run_paths(rules.cache.output.cache, PLAN.cached()),
