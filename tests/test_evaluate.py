"""Evaluation through the real entry point: perplexity of a run's best parameters on a split."""

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from markov import make_source, train_argv, write_corpus

from rnnlm import cli
from rnnlm.io import read_json, write_json
from rnnlm.mx import mxnet as mx


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on a small Markov corpus, and the corpus."""
    folder = tmp_path_factory.mktemp("evaluate")
    paths = write_corpus(folder, make_source(symbols=6), tokens=(6_000, 1_000, 1_000),
                         batch_sizes=(20, 10, 5))
    run = folder / "run"
    assert cli.main(train_argv(paths, run, "rnn_tanh")) == 0
    return run, paths


def evaluate(run, data, out, *flags):
    return cli.main(["evaluate", "--run-dir", str(run), "--data", str(data), "--out", str(out),
                     *flags])


def test_writes_loss_perplexity_and_tokens_as_json(trained, tmp_path):
    run, paths = trained
    assert evaluate(run, paths["test"], tmp_path / "test.json", "--split", "test") == 0
    result = read_json(tmp_path / "test.json")
    assert set(result) == {"split", "tokens", "loss", "perplexity", "test_ppl"}
    steps, batch = np.load(paths["test"]).shape
    assert (result["split"], result["tokens"]) == ("test", (steps - 1) * batch)
    assert result["perplexity"] == result["test_ppl"] == pytest.approx(math.exp(result["loss"]))
    assert 1 < result["perplexity"] < 6  # better than guessing among 6 symbols


def test_on_the_valid_split_it_agrees_with_training(trained, tmp_path):
    run, paths = trained
    assert evaluate(run, paths["valid"], tmp_path / "valid.json", "--split", "valid") == 0
    result = read_json(tmp_path / "valid.json")
    assert result["valid_ppl"] == pytest.approx(
        read_json(run / "summary.json")["best_valid_ppl"], rel=1e-5)


def test_bptt_changes_only_the_speed(trained, tmp_path):
    run, paths = trained
    losses = []
    for bptt in (3, 50):
        assert evaluate(run, paths["test"], tmp_path / f"{bptt}.json", "--bptt", str(bptt)) == 0
        losses.append(read_json(tmp_path / f"{bptt}.json")["loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_a_run_without_training_names_the_missing_file(tmp_path, capsys):
    assert evaluate(tmp_path / "nothing", tmp_path / "x.npy", tmp_path / "out.json") == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnlm evaluate: error: ") and "model.json: file not found" in err
    assert not (tmp_path / "out.json").exists()


def test_gpu_where_mxnet_sees_none_is_a_clear_error(trained, tmp_path, capsys):
    if mx.context.num_gpus() > 0:
        pytest.skip("this machine has a GPU")
    run, paths = trained
    assert evaluate(run, paths["test"], tmp_path / "out.json", "--device", "gpu") == 1
    assert "MXNet sees no GPU" in capsys.readouterr().err


def corrupt(path):
    """A disk or copy error that keeps the size: 8 bytes in the middle inverted."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the trained run folder, free to damage."""
    run, paths = trained
    return Path(shutil.copytree(run, tmp_path / "run")), paths


@pytest.mark.parametrize("damage", [corrupt, truncate])
def test_a_damaged_model_gives_one_line_and_no_number(run_copy, tmp_path, capsys, damage):
    run, paths = run_copy
    recorded = read_json(run / "summary.json")["model_sha256"]
    assert recorded == hashlib.sha256((run / "model.params").read_bytes()).hexdigest()
    damage(run / "model.params")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert evaluate(run, paths["test"], tmp_path / "test.json") == 1
    err = capsys.readouterr().err
    found = hashlib.sha256((run / "model.params").read_bytes()).hexdigest()
    assert err == (f"rnnlm evaluate: error: {run}/model.params is damaged (sha256 {found}, "
                   f"summary.json records {recorded}): delete it and run snakemake again to "
                   "retrain the run\n")
    assert not (tmp_path / "test.json").exists()
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing deleted


def test_a_damaged_shared_copy_is_copied_anew(run_copy, tmp_path, capsys):
    run, paths = run_copy
    summary = read_json(run / "summary.json")
    write_json(run / "summary.json", {**summary, "shared_from": "results/other/lstm/seed1"})
    corrupt(run / "model.params")
    assert evaluate(run, paths["test"], tmp_path / "test.json") == 1
    assert capsys.readouterr().err.endswith(
        "delete it and run snakemake again to copy it anew from results/other/lstm/seed1\n")


def test_a_model_trained_before_digests_loads_unchecked_but_a_cut_one_is_named(run_copy,
                                                                                tmp_path, capsys):
    run, paths = run_copy
    summary = read_json(run / "summary.json")
    del summary["model_sha256"]
    write_json(run / "summary.json", summary)
    assert evaluate(run, paths["test"], tmp_path / "test.json") == 0
    truncate(run / "model.params")
    assert evaluate(run, paths["test"], tmp_path / "again.json") == 1
    err = capsys.readouterr().err
    assert err == (f"rnnlm evaluate: error: {run}/model.params is damaged (MXNet cannot read it: "
                   "Invalid NDArray file format): delete it and run snakemake again to retrain "
                   "the run\n")
    assert not (tmp_path / "again.json").exists()
