"""The `rnnlm` console script: real subprocesses, exit codes, one-line errors without tracebacks."""

import os

import pytest
from conftest import rnnlm

from rnnlm import cli


def run(*args, cwd=None):
    return rnnlm(*args, cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_console_script_lists_every_stage():
    result = run("--help")
    assert result.returncode == 0
    for stage in ("download", "vocab", "batchify"):
        assert stage in result.stdout


def test_user_errors_are_one_line_exit_1(tmp_path):
    result = run("vocab", "--train", str(tmp_path / "missing.txt"), "--valid", "x", "--test", "y",
                 "--vocab", str(tmp_path / "v.tsv"), "--stats", str(tmp_path / "s.json"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1:] == [
        f"rnnlm vocab: error: {tmp_path / 'missing.txt'}: file not found; "
        "run the download stage first"
    ]
    assert "Traceback" not in result.stderr


def test_too_short_split_says_how_many_tokens_are_needed(tmp_path):
    (tmp_path / "t.txt").write_text(" a b \n")
    (tmp_path / "v.tsv").write_text("id\tword\tcount\n0\ta\t1\n1\tb\t1\n2\t<eos>\t1\n")
    result = run("batchify", "--corpus", str(tmp_path / "t.txt"), "--vocab",
                 str(tmp_path / "v.tsv"), "--batch-size", "4", "--out", str(tmp_path / "t.npy"))
    assert result.returncode == 1
    assert "3 tokens are too few for batch size 4 (need at least 8" in result.stderr
    assert not (tmp_path / "t.npy").exists()


def test_bad_arguments_are_usage_errors():
    assert run("batchify", "--batch-size", "many").returncode == 2
    assert run("no-such-stage").returncode == 2


@pytest.mark.parametrize(("device", "preset", "engine"), [
    ("cpu", None, "NaiveEngine"),  # the package's choice on the CPU
    ("gpu", None, None),  # GPUs keep MXNet's threaded default
    ("cpu", "ThreadedEnginePerDevice", "ThreadedEnginePerDevice"),  # the user's wins
])
def test_the_engine_is_chosen_for_the_device_unless_the_user_chose(monkeypatch, device, preset,
                                                                   engine):
    monkeypatch.delenv("MXNET_ENGINE_TYPE", raising=False)
    if preset:
        monkeypatch.setenv("MXNET_ENGINE_TYPE", preset)
    for name in ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS", "MXNET_CPU_WORKER_NTHREADS"):
        monkeypatch.delenv(name, raising=False)
    cli._use_threads(2, device)
    assert os.environ.get("MXNET_ENGINE_TYPE") == engine
    assert os.environ["OMP_NUM_THREADS"] == "2"
