"""Share stage through `rnnlm share`: a run folder gets an equal run's training outputs, byte for
byte, and summary.json says where they came from; a source that did not train is refused."""

import hashlib
import json

from conftest import rnnlm
from run_folders import make_run

from rnnlm.share import TRAINED


def test_a_shared_run_gets_the_trained_files_and_names_their_source(tmp_path):
    trained = make_run(tmp_path / "results", "tutorial", "lstm")
    for name in ("model.params", "model.json"):
        (trained / name).write_bytes(name.encode() * 3)
    out = tmp_path / "results" / "sw" / "lr~1.0" / "lstm" / "seed1"
    result = rnnlm("share", "--from", trained, "--out-dir", out)
    assert result.returncode == 0, result.stderr
    for name in TRAINED:
        assert (out / name).read_bytes() == (trained / name).read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    assert summary.pop("shared_from") == str(trained)
    assert summary == json.loads((trained / "summary.json").read_text())
    assert not (out / "test.json").exists()  # evaluation is not training: each run evaluates


def test_a_source_that_did_not_finish_training_or_the_run_itself_is_refused(tmp_path):
    trained = make_run(tmp_path, "tutorial", "lstm")
    result = rnnlm("share", "--from", trained, "--out-dir", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"rnnlm share: error: {trained}: model.params, model.json missing beside summary.json; "
        "rerun the train stage for that run")
    (trained / "summary.json").unlink()
    result = rnnlm("share", "--from", trained, "--out-dir", tmp_path / "out")
    assert "summary.json: file not found" in result.stderr and not (tmp_path / "out").exists()
    result = rnnlm("share", "--from", trained, "--out-dir", trained)
    assert result.stderr.strip().endswith("a run cannot share its own training; give --from "
                                          "another run")


def test_a_damaged_source_is_refused_and_nothing_is_copied(tmp_path):
    trained = make_run(tmp_path / "results", "tutorial", "lstm")
    for name in ("model.params", "model.json"):
        (trained / name).write_bytes(name.encode() * 3)
    summary = json.loads((trained / "summary.json").read_text())
    recorded = hashlib.sha256(b"model.params" * 3).hexdigest()
    (trained / "summary.json").write_text(json.dumps({**summary, "model_sha256": recorded}))
    out = tmp_path / "results" / "copy" / "lstm" / "seed1"
    assert rnnlm("share", "--from", trained, "--out-dir", out).returncode == 0  # whole: copied
    (trained / "model.params").write_bytes(b"model.paramz" * 3)  # a disk error, the same size
    out = tmp_path / "results" / "other" / "lstm" / "seed1"
    result = rnnlm("share", "--from", trained, "--out-dir", out)
    assert result.returncode == 1
    found = hashlib.sha256(b"model.paramz" * 3).hexdigest()
    assert result.stderr.strip().splitlines()[-1] == (
        f"rnnlm share: error: {trained}/model.params is damaged (sha256 {found}, summary.json "
        f"records {recorded}): delete it and run snakemake again to retrain the run")
    assert not out.exists()
