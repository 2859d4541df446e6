"""`rnnlm watch` beside a training job running in the background, through the real commands;
and what it makes of the files a run leaves when it stops, or runs on another host."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import RNNLM, rnnlm

from rnnlm.live import NAME, write_live
from rnnlm.watch import STALE, scan

VOCAB = 50


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    """A vocabulary and id arrays (as the batchify stage writes them) for a tiny model that
    trains for a few seconds: 8 epochs of 400 windows."""
    folder = tmp_path_factory.mktemp("watch_data")
    rows = "".join(f"{i}\tw{i}\t{VOCAB - i}\n" for i in range(VOCAB))
    (folder / "vocab.tsv").write_text("id\tword\tcount\n" + rows)
    rng = np.random.default_rng(0)
    np.save(folder / "train.npy", rng.integers(0, VOCAB, (2001, 4), dtype=np.int32))
    np.save(folder / "valid.npy", rng.integers(0, VOCAB, (200, 2), dtype=np.int32))
    return folder


def start_training(arrays, run, epochs=8):
    return subprocess.Popen(
        [str(RNNLM), "train", "--mode", "gru", "--vocab", arrays / "vocab.tsv", "--train",
         arrays / "train.npy", "--valid", arrays / "valid.npy", "--out-dir", run, "--emsize", "8",
         "--nhid", "8", "--nlayers", "1", "--epochs", str(epochs), "--log-interval", "20",
         "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path, job, timeout=120):
    """Until ``path`` exists (the run's first report); fails if the job ends first."""
    end = time.monotonic() + timeout
    while not path.exists():
        assert job.poll() is None, job.stderr.read()
        assert time.monotonic() < end, f"no {path} after {timeout} s"
        time.sleep(0.05)


def test_watch_follows_a_running_job_and_exits_when_it_is_done(arrays, tmp_path):
    results = tmp_path / "results"
    run = results / "tiny" / "gru" / "seed1"
    job = start_training(arrays, run)
    try:
        wait_for(run / "checkpoint" / NAME, job)
        watched = rnnlm("watch", results, "--until-done", "--interval", "0.2")
        finished = (run / "summary.json").is_file()  # when watch left: the run's last output
        ended = job.wait(timeout=60)
    finally:
        job.kill()
        job.wait()
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.splitlines()
    # not a terminal (a pipe here, a SLURM log there): plain lines, no redraws
    assert not any("\r" in text or "\x1b" in text for text in lines)
    progress = [re.search(r"tiny/gru/seed1: epoch (\d)/8, window (\d+)/400 \((\d+)%\), "
                          r"([\d,]+) tok/s, ETA \d+:\d\d:\d\d, train ppl ([\d.]+), valid ppl "
                          r"([\d.]+|-)$", text) for text in lines[:-2]]
    assert progress and all(progress), [t for t, m in zip(lines, progress, strict=True) if not m]
    first = progress[0]
    assert 1 <= int(first[1]) <= 8 and 20 <= int(first[2]) <= 400
    assert int(first[3]) == 100 * int(first[2]) // 400 and float(first[5]) > 1
    summary = json.loads((run / "summary.json").read_text())
    assert re.search(rf"tiny/gru/seed1: done, 8 epochs, best valid ppl "
                     rf"{summary['best_valid_ppl']:.1f}, ", lines[-2]), lines[-2]
    assert lines[-1] == f"nothing running under {results}: 1 done, 0 stopped"
    assert finished and ended == 0  # watch waited for the job, which ended well
    assert not (run / "checkpoint").exists()  # its status file went with its checkpoint


def default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_watch_draws_bars_on_a_terminal_and_leaves_at_ctrl_c(arrays, tmp_path):
    results = tmp_path / "results"
    run = results / "tiny" / "gru" / "seed1"
    job = start_training(arrays, run, epochs=50)
    env = {**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "160"}  # rich draws as on a terminal
    try:
        wait_for(run / "checkpoint" / NAME, job)
        # as from a terminal: a suite started in the background by a non-interactive shell (as a
        # CI script may be) ignores SIGINT, and a child started with it ignored never turns
        # Ctrl-C into KeyboardInterrupt
        watcher = subprocess.Popen([str(RNNLM), "watch", results, "--interval", "0.2"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=env, preexec_fn=default_sigint)
        time.sleep(3)
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=60)
        assert job.poll() is None  # still training: Ctrl-C left it alone
    finally:
        job.kill()
        job.wait()
    assert watcher.returncode == 0 and "Traceback" not in err, err
    assert "\x1b[" in out  # drawn in place, with the terminal's escapes
    assert re.search(r"tiny/gru/seed1 +\d+/50 +\d+/400 .*━", out), out[-2000:]
    for header in ("epoch", "windows", "tok/s", "ETA", "train ppl", "valid ppl"):
        assert header in out


def status(folder, **fields):
    base = {"epoch": 2, "epochs": 3, "window": 10, "windows": 40, "tokens_per_s": 1000.0,
            "train_ppl": 300.0, "valid_ppl": 320.0, "seconds_per_window": 0.5,
            "valid_seconds": 2.0}
    path = folder / "checkpoint" / NAME
    write_live(path, **base)
    record = {**json.loads(path.read_text()), **fields}
    path.write_text(json.dumps(record))
    return record


def test_a_run_is_stopped_when_its_writer_is_gone_or_silent_too_long(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    status(tmp_path / "here" / "lstm" / "seed1", pid=int(ended.stdout))  # its process ended
    now = time.time()
    status(tmp_path / "node7" / "lstm" / "seed1", host="node7", updated=now - STALE - 1)
    status(tmp_path / "node8" / "lstm" / "seed1", host="node8", updated=now - 60)
    status(tmp_path / "mine" / "lstm" / "seed1")  # this process writes it
    views = {view.name: view.state for view in scan(tmp_path, now)}
    assert views == {"here/lstm/seed1": "stopped", "node7/lstm/seed1": "stopped",
                     "node8/lstm/seed1": "running", "mine/lstm/seed1": "running"}


def test_a_summary_newer_than_the_status_marks_the_run_done(tmp_path):
    run = tmp_path / "exp" / "gru" / "seed1"
    record = status(run, updated=time.time() - 30)
    (run / "summary.json").write_text(json.dumps({"epochs": 3, "best_valid_ppl": 99.0}))
    (view,) = scan(tmp_path)
    assert view.state == "done" and view.summary["best_valid_ppl"] == 99.0
    status(run, updated=time.time() + 30)  # a rerun began after that summary was written
    (view,) = scan(tmp_path)
    assert view.state == "running" and view.live["pid"] == record["pid"]


def test_watch_refuses_an_interval_that_is_not_a_finite_positive_number(tmp_path):
    for bad in ("0", "-1", "nan", "inf"):
        done = rnnlm("watch", tmp_path, "--interval", bad)
        assert done.returncode == 2 and "--interval" in done.stderr, (bad, done.stderr)
