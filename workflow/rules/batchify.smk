rule batchify:
    input:
        corpus="resources/{corpus}/{split}.txt",
        vocab=rules.vocab.output.vocab,
    output:
        array="results/data/{corpus}/{split}.b{batch_size}.npy",
    log:
        logs("batchify/{corpus}/{split}.b{batch_size}.log"),
    benchmark:
        benchmarks("batchify/{corpus}/{split}.b{batch_size}.tsv")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        flags=batchify_flags,
        code=code_digest("batchify"),
    shell:
        "rnnlm batchify --corpus {input.corpus:q} --vocab {input.vocab:q}"
        " --batch-size {wildcards.batch_size} --out {output.array:q} {params.flags}"
        " > {log:q} 2>&1"
