"""Evaluation-time adaptation's faults: a dynamic evaluation job killed part way (a node lost, a
time limit) resumes from what it finished. Through `snakemake` on the tiny workflow."""

import json
import re
import signal

import pytest

from faults.pipeline import (
    MESSAGES,
    copy_workdir,
    kill_group,
    snakemake,
    start_snakemake,
    tiny_workflow,
    wait_for,
)

RUN = "results/tiny/lstm/seed1"
PARTS = f"{RUN}/dynamic_eval.parts"


@pytest.mark.slow
def test_a_dynamic_evaluation_killed_part_way_resumes_from_its_finished_passes(
        data_ready, tmp_path, tiny_mirror):
    workdir = tiny_workflow(copy_workdir(data_ready, tmp_path / "work"), *tiny_mirror, epochs=1,
                            dynamic_eval={"lr": [1.0e-4, 1.0e-3, 1.0e-2], "decay": [0.01, 0.02],
                                          "segment": 1, "ms_windows": 20})
    target = f"{RUN}/dynamic_eval.json"
    job = start_snakemake(workdir, target)
    wait_for(lambda: any((workdir / PARTS).glob("pass-*.npz")), job, what="a finished pass")
    kill_group(job, signal.SIGKILL)
    assert not (workdir / target).exists()
    finished = len(list((workdir / PARTS).glob("pass-*.npz")))
    for lock in (workdir / ".snakemake" / "locks").glob("*"):
        lock.unlink()  # what `snakemake --unlock` does, without a Snakemake start
    snakemake(workdir, "--cores", "1", "--rerun-incomplete", target)
    log = (workdir / "results/logs/dynamic_eval/tiny/lstm/seed1.log").read_text()
    assert MESSAGES["dynamic evaluation killed"] in log
    resumed = int(re.search(r"resuming: (\d+) finished passes", log)[1])
    assert 1 <= resumed == finished < 7 + 2  # 7 over validation, 2 or 3 over test
    result = json.loads((workdir / target).read_text())
    assert len(result["grid"]) == 7 and result["test_ppl_dynamic"] is not None
    assert not (workdir / PARTS).exists()
