"""Memory faults through `snakemake`: a train job declares the memory rnnlm.memory estimates, so
a cap (`--resources mem_mb`, a cluster's --mem) schedules by it, and a model larger than the cap
is refused by its job before it allocates anything."""

import re

from faults.pipeline import MESSAGES, copy_workdir, run_failing, snakemake, tiny_workflow

RUN = "results/tiny/lstm/seed1"


def declared_mem_mb(workdir, *config):
    """The mem_mb a dry run shows for the train job."""
    out = snakemake(workdir, "-n", f"{RUN}/summary.json", "--config", *config).stdout
    job = out.split("rule train:", 1)[1].split("\n\n", 1)[0]
    return int(re.search(r"\bmem_mb=([0-9]+)", job)[1])


def test_train_jobs_declare_memory_that_grows_with_nhid(data_ready, tmp_path):
    workdir = copy_workdir(data_ready, tmp_path / "work")
    sizes = [declared_mem_mb(workdir, f"experiments={{tiny: {{nhid: {n}, emsize: {n}}}}}")
             for n in (8, 500, 1000)]
    assert sizes[0] < sizes[1] < sizes[2], sizes
    assert sizes[2] - sizes[0] > 3.5 * (sizes[1] - sizes[0])  # the recurrent weights: nhid squared


def test_a_model_over_the_memory_cap_is_refused_by_its_job(data_ready, tmp_path, tiny_mirror):
    workdir = tiny_workflow(copy_workdir(data_ready, tmp_path / "work"), *tiny_mirror, nhid=100,
                            emsize=100, nlayers=2)
    error = run_failing(workdir, "results/logs/train/tiny/lstm/seed1.log", f"{RUN}/summary.json",
                        "--resources", "mem_mb=150")  # --resources takes every word after it
    assert error.startswith("rnnlm train: error: lstm (nhid 100, emsize 100, nlayers 2, ")
    assert "needs about 2" in error and MESSAGES["model over the job's memory"] in error
    assert not (workdir / RUN / "model.params").exists()
