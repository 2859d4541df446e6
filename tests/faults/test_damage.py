"""Damaged files: a model.params or a checkpoint whose bytes are no longer those written (a disk
or copy error keeps the size; a write the system lost cuts it short). A stage that reads a damaged
model stops with one line naming the file and the fix, writes no number and deletes nothing; a
damaged checkpoint is set aside and the run starts over. Through `snakemake` on the tiny
workflow, its finished run copied rather than trained again."""

import json
import signal

import pytest
from test_evaluate import corrupt, truncate

from faults.pipeline import (
    MESSAGES,
    copy_workdir,
    interrupted_in_epoch_2,
    metrics_epochs,
    read_checkpoint,
    run_failing,
    snakemake,
    tiny_workflow,
)

RUN = "results/tiny/lstm/seed1"
EVALUATE_LOG = "results/logs/evaluate/tiny/lstm/seed1.log"
TRAIN_LOG = "results/logs/train/tiny/lstm/seed1.log"
# what a rerun of evaluate rewrites: its output (Snakemake deletes it first), log and benchmark
EVALUATE_FILES = (f"{RUN}/test.json", EVALUATE_LOG,
                  "results/benchmarks/evaluate/tiny/lstm/seed1.tsv")


def files(workdir, *but):
    """{path: bytes} of every file the pipeline wrote (its own records aside), but ``but``."""
    return {p.relative_to(workdir): p.read_bytes()
            for top in ("results", "resources") for p in (workdir / top).rglob("*")
            if p.is_file() and str(p.relative_to(workdir)) not in but}


@pytest.fixture(scope="module")
def evaluated(data_ready, tmp_path_factory):
    """A copy of ``data_ready`` whose run is trained and evaluated; tests copy it in turn."""
    workdir = copy_workdir(data_ready, tmp_path_factory.mktemp("evaluated") / "work")
    snakemake(workdir, "--cores", "1", "evaluate_all")
    return workdir


@pytest.mark.parametrize("damage", [corrupt, truncate])
def test_a_damaged_model_gives_one_line_no_number_and_loses_nothing(evaluated, tmp_path,
                                                                    damage):
    workdir = copy_workdir(evaluated, tmp_path / "work")
    good = json.loads((workdir / RUN / "test.json").read_text())
    damage(workdir / RUN / "model.params")
    before = files(workdir, *EVALUATE_FILES)
    # the user doubts a number, or the disk reported errors: evaluate again
    error = run_failing(workdir, EVALUATE_LOG, "evaluate_all", "--forcerun", "evaluate")
    assert error.startswith(f"rnnlm evaluate: error: {RUN}/model.params is damaged (sha256 ")
    assert all(MESSAGES[f"damaged model{part}"] in error for part in ("", " record", " fix"))
    assert not (workdir / RUN / "test.json").exists()  # no number
    assert files(workdir, *EVALUATE_FILES) == before  # nothing else lost or changed
    if damage is corrupt:  # the fix the message gives: the run retrained, the same number again
        (workdir / RUN / "model.params").unlink()
        snakemake(workdir, "--cores", "1", "evaluate_all")
        again = json.loads((workdir / RUN / "test.json").read_text())
        assert again["test_ppl"] == pytest.approx(good["test_ppl"], rel=1e-6)


def test_a_cut_model_of_a_run_trained_before_digests_is_named_too(evaluated, tmp_path):
    """A summary.json without model_sha256 (an older run): its model loads unchecked, but one
    MXNet cannot read still gives the one line, not MXNet's traceback."""
    workdir = copy_workdir(evaluated, tmp_path / "work")
    summary = workdir / RUN / "summary.json"
    summary.write_text(json.dumps({k: v for k, v in json.loads(summary.read_text()).items()
                                   if k != "model_sha256"}))
    snakemake(workdir, "--cores", "1", "evaluate_all", "--forcerun", "evaluate")
    truncate(workdir / RUN / "model.params")
    error = run_failing(workdir, EVALUATE_LOG, "evaluate_all", "--forcerun", "evaluate")
    assert error == (f"rnnlm evaluate: error: {RUN}/model.params is damaged (MXNet cannot read "
                     "it: Invalid NDArray file format): delete it and run snakemake again to "
                     "retrain the run")
    assert MESSAGES["unreadable old model"] in error


def test_a_damaged_array_gives_one_line_and_no_number(evaluated, tmp_path):
    workdir = copy_workdir(evaluated, tmp_path / "work")
    corrupt(workdir / "results/data/ptb/test.b2.npy")
    before = files(workdir, *EVALUATE_FILES)
    error = run_failing(workdir, EVALUATE_LOG, "evaluate_all", "--forcerun", "evaluate")
    assert error.startswith("rnnlm evaluate: error: results/data/ptb/test.b2.npy is damaged "
                            "(sha256 ")
    assert MESSAGES["damaged array"] in error and MESSAGES["damaged array fix"] in error
    assert not (workdir / RUN / "test.json").exists()
    assert files(workdir, *EVALUATE_FILES) == before


@pytest.mark.slow
@pytest.mark.parametrize("damage", [truncate, corrupt])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_over(data_ready, tmp_path,
                                                                   tiny_mirror, damage):
    workdir = tiny_workflow(copy_workdir(data_ready, tmp_path / "work"), *tiny_mirror, epochs=3)
    interrupted_in_epoch_2(workdir, RUN, signal.SIGINT, "group")  # Ctrl-C
    record = read_checkpoint(workdir / RUN)
    params = workdir / RUN / "checkpoint" / record["files"]["params"]
    damage(params)
    kept = {p.name: p.read_bytes() for p in params.parent.iterdir()}
    snakemake(workdir, "--cores", "1", "train_all")  # the same command again
    log = (workdir / TRAIN_LOG).read_text()
    aside = [p for p in (workdir / RUN).iterdir() if p.name.startswith("checkpoint.damaged-")]
    assert len(aside) == 1 and {p.name: p.read_bytes() for p in aside[0].iterdir()} == kept
    line = next(line for line in log.splitlines() if "set aside" in line)
    assert f"{RUN}/checkpoint/{params.name} is damaged (sha256 " in line
    assert all(MESSAGES[f"damaged checkpoint{part}"] in line for part in ("", " fix", " restart"))
    assert "resuming" not in log and "end of epoch   1 " in log  # started over
    assert metrics_epochs(workdir / RUN / "metrics.csv") == [1, 2, 3]
    assert not (workdir / RUN / "checkpoint").exists()
