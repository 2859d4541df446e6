rule evaluate:
    input:
        params=rules.train.output.params,
        config=rules.train.output.config,
        test=array("test"),
        choice=tuned_choice,
    output:
        test="results/{experiment}/{mode}/seed{seed}/test.json",
    log:
        logs("evaluate/{experiment}/{mode}/seed{seed}.log"),
    benchmark:
        benchmarks("evaluate/{experiment}/{mode}/seed{seed}.tsv")
    threads: config["threads"]
    resources:
        **gpu_resources(),
        mem_mb=evaluate_memory,
        runtime=30,
    params:
        run_dir=run_dir,
        bptt=bptt,
        device=device_flags,
        code=code_digest("evaluate") + code_digest("limits"),
    shell:
        "rnnlm evaluate --run-dir {params.run_dir:q} --data {input.test:q} --bptt {params.bptt}"
        " --split test --out {output.test:q} {params.device} --memory-mb {resources.mem_mb}"
        " --threads {threads} > {log:q} 2>&1"


localrules:
    evaluate_all,


rule evaluate_all:
    input:
        run_paths(rules.evaluate.output.test),
