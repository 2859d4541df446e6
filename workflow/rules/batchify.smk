# The array's digest beside it ({array}.sha256, which readers check) is deliberately not an
# output: declared, it would be missing in a folder batchified before it existed, and Snakemake
# would batchify again and so retrain every run of the corpus.
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
