"""The runs a configuration asks for: experiments (plain, presets and the points of sweeps and
tunes), each trained in every mode with every seed, on its corpus.

``expand.make_plan(config, workflow)`` is the one function the Snakemake workflow calls: it
expands the config into a ``runs.Plan``, whose queries tell the workflow everything it needs to
know (which runs, which corpora, which arrays), and ``flags`` turns a run's settings into its
commands' flags.

    results/{experiment}/{mode}/seed{seed}/       one run, however many seeds
    results/{sweep}/{key}~{value}/.../{mode}/...  a sweep's point (snakemake.utils.Paramspace)
    results/{tune}/trial~{i}/epochs~{e}/{mode}/...  a tune's trial i, trained to e epochs
    results/{tune}/{mode}/seed{seed}/             a tune's final runs, each mode at its choice
"""
