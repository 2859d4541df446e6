"""Two `snakemake` runs in one folder: the second refuses with Snakemake's lock and the first
finishes untouched; `--cores 2` runs two one-thread training jobs at once, each with one thread."""

import json
import os
import re
import signal

from faults.pipeline import (
    MESSAGES,
    copy_workdir,
    group_process,
    metrics_epochs,
    snakemake,
    start_snakemake,
    tiny_workflow,
    wait_for,
)


def test_a_second_run_in_the_same_folder_refuses(data_ready, tmp_path, tiny_mirror):
    workdir = tiny_workflow(copy_workdir(data_ready, tmp_path / "work"), *tiny_mirror, epochs=2)
    first = start_snakemake(workdir, "train_all")
    wait_for(lambda: group_process(first, "train"), first, what="the training job")
    training = group_process(first, "train")
    os.kill(training, signal.SIGSTOP)  # the first run surely outlasts the second's start
    try:
        second = snakemake(workdir, "--cores", "1", "train_all", check=False)
    finally:
        os.kill(training, signal.SIGCONT)
    assert second.returncode == 1
    assert MESSAGES["second run in the same folder"] in second.stderr
    assert "rule train" not in second.stdout + second.stderr  # it ran nothing
    assert first.wait(timeout=600) == 0
    run = workdir / "results/tiny/lstm/seed1"
    assert metrics_epochs(run / "metrics.csv") == [1, 2]
    assert "resuming" not in (workdir / "results/logs/train/tiny/lstm/seed1.log").read_text()


def test_two_one_thread_jobs_run_at_once_on_two_cores(data_ready, tmp_path, tiny_mirror):
    workdir = tiny_workflow(copy_workdir(data_ready, tmp_path / "work"), *tiny_mirror,
                            modes=("lstm", "gru"), epochs=3)
    result = snakemake(workdir, "--cores", "2", "train_all")
    text = result.stdout + result.stderr
    started = [m.start() for m in re.finditer(r"^(?:local)?rule train:$", text, re.M)]
    finished = [m.start() for m in re.finditer(r"^Finished jobid: \d+ \(Rule: train\)$", text,
                                               re.M)]
    assert len(started) == len(finished) == 2
    assert max(started) < min(finished)  # the second started before the first finished
    for mode in ("lstm", "gru"):
        log = (workdir / f"results/logs/train/tiny/{mode}/seed1.log").read_text()
        assert "MXNet CPU threads: 1" in log  # what the job's MXNet really used
        summary = json.loads((workdir / f"results/tiny/{mode}/seed1/summary.json").read_text())
        assert summary["threads"] == 1
