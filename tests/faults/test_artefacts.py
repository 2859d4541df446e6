"""Artefacts: the pipeline is killed (SIGKILL to Snakemake and its jobs, as when a node is lost)
once inside each stage, at a point drawn from a fixed seed or when the stage's first output
appears; after every kill each declared output that exists must read whole, and the run must
carry on to the end."""

import hashlib
import random
import signal
import time

import pytest

from faults.pipeline import (
    MESSAGES,
    assert_whole,
    declared_outputs,
    group_process,
    kill_group,
    metrics_epochs,
    snakemake,
    start_snakemake,
    tiny_workflow,
)

RUN = "results/tiny/lstm/seed1"
STAGES = {  # rule (= `rnnlm` subcommand) -> its declared outputs in the tiny workflow
    "download": [*(f"resources/ptb/{s}.txt" for s in ("train", "valid", "test")),
                 "resources/ptb/source.json"],
    "vocab": ["results/data/ptb/vocab.tsv", "results/data/ptb/stats.json"],
    "batchify": [f"results/data/ptb/{a}.npy" for a in ("train.b4", "valid.b2", "test.b2")],
    "train": [f"{RUN}/{name}" for name in ("model.params", "model.json", "metrics.csv",
                                           "progress.csv", "summary.json")],
    "evaluate": [f"{RUN}/test.json"],
    "predict": [f"{RUN}/predictions.json"],
    "compare-predictions": ["results/predictions.md", "results/predictions.html"],
    "table": [f"results/{name}" for name in ("runs.csv", "runs.html", "perplexity.csv",
                                             "perplexity.md", "perplexity.html")],
    "compare": [f"results/comparisons.{suffix}" for suffix in ("csv", "md", "html")],
    "provenance": [f"results/provenance.{suffix}" for suffix in ("csv", "html")],
    "plots": [f"results/plots/{name}.png" for name in ("learning_curves.tiny", "test_ppl",
                                                         "throughput")],
}
SEED = 7  # the kill points: uniform in [0, 3) s after the stage's process starts


def kill_inside(workdir, stage, delay):
    """Run the pipeline until ``stage`` runs, then kill everything ``delay`` s later or as soon
    as one of its outputs appears. False when the stage was over before it could be hit."""
    outputs = [workdir / path for path in STAGES[stage]]
    job = start_snakemake(workdir, "--rerun-incomplete")
    while group_process(job, stage) is None:
        if all(p.exists() for p in outputs):
            kill_group(job, signal.SIGKILL)
            return False
        assert job.poll() is None, f"snakemake ended before {stage} ran"
        time.sleep(0.01)
    seen = time.monotonic()
    while time.monotonic() - seen < delay and not any(p.exists() for p in outputs):
        time.sleep(0.005)
    kill_group(job, signal.SIGKILL)
    return True


def assert_all_whole(workdir, digests):
    """Every declared output present reads whole; a downloaded split has its digest."""
    for path in (workdir / p for paths in STAGES.values() for p in paths):
        if path.exists():
            assert_whole(path)
            if path.parent == workdir / "resources" / "ptb" and path.suffix == ".txt":
                actual = hashlib.sha256(path.read_bytes()).hexdigest()
                assert actual == digests[path.stem], path


def unlock(workdir):
    """What `snakemake --unlock` does, without paying for a Snakemake start per kill."""
    for lock in (workdir / ".snakemake" / "locks").glob("*"):
        lock.unlink()


@pytest.mark.slow
def test_killed_in_every_stage_no_output_is_ever_torn(tmp_path, tiny_mirror):
    workdir = tiny_workflow(tmp_path, *tiny_mirror)
    rng = random.Random(SEED)
    hit = []
    for stage in STAGES:
        if kill_inside(workdir, stage, rng.uniform(0, 3)):
            hit.append(stage)
        assert_all_whole(workdir, tiny_mirror[1])
        if len(hit) == 1:  # the first time, as the user meets it: Snakemake's lock, --unlock
            refused = snakemake(workdir, "--cores", "1", "--rerun-incomplete", check=False)
            assert refused.returncode == 1
            assert MESSAGES["snakemake itself killed"] in refused.stderr
            snakemake(workdir, "--unlock")
        unlock(workdir)
    assert len(hit) >= 6, hit  # most stages were hit while running
    snakemake(workdir, "--cores", "1", "--rerun-incomplete")
    expected = sorted(workdir / p for paths in STAGES.values() for p in paths)
    assert sorted(declared_outputs(workdir)) == expected  # STAGES lists every declared output
    assert_all_whole(workdir, tiny_mirror[1])
    assert metrics_epochs(workdir / RUN / "metrics.csv") == [1, 2]
