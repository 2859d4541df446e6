rule vocab:
    input:
        train=rules.download.output.train,
        valid=rules.download.output.valid,
        test=rules.download.output.test,
    output:
        vocab="results/data/vocab.tsv",
        stats="results/data/stats.json",
    log:
        logs("vocab.log"),
    benchmark:
        benchmarks("vocab.tsv")
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        code=code_digest("vocab"),
    shell:
        "rnnlm vocab --train {input.train:q} --valid {input.valid:q} --test {input.test:q}"
        " --vocab {output.vocab:q} --stats {output.stats:q} > {log:q} 2>&1"
