# Local: cluster compute nodes often have no route to the internet.
localrules:
    download,


rule download:
    output:
        train="resources/ptb/ptb.train.txt",
        valid="resources/ptb/ptb.valid.txt",
        test="resources/ptb/ptb.test.txt",
    log:
        logs("download.log"),
    benchmark:
        benchmarks("download.tsv")
    resources:
        mem_mb=500,
        runtime=30,
    params:
        url=data_url,
        sha256=[config["data"]["sha256"][split] for split in SPLITS],
        out_dir=output_dir,
        code=code_digest("data"),
    shell:
        "rnnlm download --url {params.url:q} --out-dir {params.out_dir:q}"
        " --sha256 {params.sha256:q} > {log:q} 2>&1"
