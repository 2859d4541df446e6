"""The `rnnlm` console script: real subprocesses, exit codes, one-line errors without tracebacks."""

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import RNNLM, rnnlm

from rnnlm.cli.args import use_threads


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
    use_threads(2, device)
    assert os.environ.get("MXNET_ENGINE_TYPE") == engine
    assert os.environ["OMP_NUM_THREADS"] == "2"


def _cpu_seconds_by_thread(pid):
    """CPU seconds (user + system) of each live thread of process ``pid``, by thread id."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread or the process ended meanwhile
            continue
        seconds[task.name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("threads", [1, 2])
def test_a_training_job_uses_no_more_cores_than_its_threads(tmp_path, threads):
    """What Snakemake gives a job (--threads N) bounds the cores it keeps busy, checked two ways
    that load on the machine cannot fool: CPU time over wall time stays under N (other work only
    lowers it), and at most N of the process's threads do any real share of the work (a thread
    that works is one that can run beside the others, whatever the machine's load)."""
    vocab = 2000
    rows = "".join(f"{i}\tw{i}\t{vocab - i}\n" for i in range(vocab))
    (tmp_path / "vocab.tsv").write_text("id\tword\tcount\n" + rows)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.integers(0, vocab, (800, 32), dtype=np.int32))
    np.save(tmp_path / "valid.npy", rng.integers(0, vocab, (100, 10), dtype=np.int32))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MXNET_", "OMP_"))}  # the package's choices, none of the user's
    start = time.perf_counter()
    job = subprocess.Popen(
        [str(RNNLM), "train", "--mode", "lstm", "--vocab", tmp_path / "vocab.tsv", "--train",
         tmp_path / "train.npy", "--valid", tmp_path / "valid.npy", "--out-dir", tmp_path / "run",
         "--emsize", "128", "--nhid", "128", "--bptt", "20", "--max-batches", "30",
         "--threads", str(threads)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    seen = {}
    while job.poll() is None:
        seen.update(_cpu_seconds_by_thread(job.pid))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    assert job.returncode == 0, job.stderr.read()
    total = sum(seen.values())
    assert total > 0.5  # enough work to tell: the last samples miss at most 0.05 s
    assert total / wall < threads + 0.3
    working = [s for s in seen.values() if s > 0.05 * total]
    assert len(working) <= threads, sorted(seen.values(), reverse=True)
