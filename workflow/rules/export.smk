rule export:
    input:
        params=rules.train.output.params,
        config=rules.train.output.config,
    output:
        "results/{experiment}/{mode}/seed{seed}/model.{suffix}",
    log:
        logs("export/{experiment}/{mode}/seed{seed}.{suffix}.log"),
    benchmark:
        benchmarks("export/{experiment}/{mode}/seed{seed}.{suffix}.tsv")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run_dir=run_dir,
        format=export_format,
        code=code_digest("export"),
    shell:
        "rnnlm export --run-dir {params.run_dir:q} --format {params.format} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"
