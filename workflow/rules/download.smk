# Local: cluster compute nodes often have no route to the internet.
localrules:
    download,


rule download:
    output:
        train="resources/{corpus}/train.txt",
        valid="resources/{corpus}/valid.txt",
        test="resources/{corpus}/test.txt",
        source="resources/{corpus}/source.json",  # what was read: the provenance table's
    log:
        logs("download/{corpus}.log"),
    benchmark:
        benchmarks("download/{corpus}.tsv")
    resources:
        mem_mb=500,
        runtime=60,
    params:
        url=corpus_url,
        source=corpus_source,
        out_dir=output_dir,
        code=code_digest("data"),
    shell:
        "rnnlm download --corpus {wildcards.corpus:q} --url {params.url:q} {params.source}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
