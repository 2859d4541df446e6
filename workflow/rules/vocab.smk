rule vocab:
    input:
        train=rules.download.output.train,
        valid=rules.download.output.valid,
        test=rules.download.output.test,
    output:
        vocab="results/data/{corpus}/vocab.tsv",
        stats="results/data/{corpus}/stats.json",
    log:
        logs("vocab/{corpus}.log"),
    benchmark:
        benchmarks("vocab/{corpus}.tsv")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        rules=vocab_rules,
        code=code_digest("vocab"),
    shell:
        "rnnlm vocab --train {input.train:q} --valid {input.valid:q} --test {input.test:q}"
        " --vocab {output.vocab:q} --stats {output.stats:q} {params.rules} > {log:q} 2>&1"
