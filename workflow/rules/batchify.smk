rule batchify:
    input:
        corpus=corpus,
        vocab=rules.vocab.output.vocab,
    output:
        array="results/data/{split}.b{batch_size}.npy",
    log:
        logs("batchify/{split}.b{batch_size}.log"),
    benchmark:
        benchmarks("batchify/{split}.b{batch_size}.tsv")
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        code=code_digest("batchify"),
    shell:
        "rnnlm batchify --corpus {input.corpus:q} --vocab {input.vocab:q}"
        " --batch-size {wildcards.batch_size} --out {output.array:q} > {log:q} 2>&1"
