"""A small tune through workflow/profiles/slurm on the real local SLURM: every trial, rung and
final run a SLURM job, and the halving checkpoint unfolding the DAG between them."""

import re

import pandas as pd
import pytest
from test_profiles import finish, jobs_of, slurm_record, start, variant
from test_workflow import EXPERIMENTS, write_config

pytestmark = pytest.mark.slow
TUNE = {"base": "small", "trials": 3, "seed": 7, "rungs": [1, 2], "eta": 3, "seeds": [1],
        "space": {"lr": {"log_uniform": [0.3, 3]}}}
TARGETS = ["results/tunes/t.csv", "results/t/lstm/seed1/test.json"]


def test_a_tune_runs_as_slurm_jobs(slurm, tiny_mirror, tmp_path):
    workdir = write_config(tmp_path / "work", *tiny_mirror, run=["t"], modes=["lstm"],
                           experiments={"small": EXPERIMENTS["small"]}, tunes={"t": TUNE})
    code, log = finish(start(workdir, "--workflow-profile", str(variant("slurm", tmp_path)),
                             "--verbose", *TARGETS), workdir)
    assert code == 0, log[-6000:]
    submitted = dict(re.findall(r"^Job (\d+) has been submitted with SLURM jobid (\d+) ", log,
                                re.M))
    jobs = jobs_of(log)
    assert set(submitted) == set(jobs)  # no local job but the download
    rules = [rule for rule, _, _ in jobs.values()]
    assert {rule: rules.count(rule) for rule in set(rules)} == {
        "vocab": 1, "batchify": 3, "trial": 3 + 1, "halving": 2, "tune_table": 1, "train": 1,
        "evaluate": 1}
    for jobid, slurm_id in submitted.items():
        assert slurm_record(slurm_id)["JobState"] == "COMPLETED", jobs[jobid]
    table = pd.read_csv(workdir / TARGETS[0])
    assert list(table.groupby("rung").size()) == [3, 1]
    chosen = table[table["chosen"]]
    assert len(chosen) == 1 and chosen["rung"].item() == 2
    assert (workdir / "results/t/lstm/seed1/summary.json").exists()
