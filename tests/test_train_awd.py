"""AWD-LSTM's training keys through `rnnlm train`: NT-ASGD's trigger and average, fine-tuning,
and runs averaging on variable windows that are cut or killed and resumed, the average
included."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from markov import make_source, train_argv, write_corpus
from test_train import Crash, _crash_at_report, assert_same_losses, metrics

import rnnlm.loop
from rnnlm import cli
from rnnlm.io import read_json
from rnnlm.loop import Run
from rnnlm.model import RNNModel
from rnnlm.mx import mxnet as mx
from rnnlm.trained import read_model_config

# What a resume must restore exactly: the average, the windows, the penalties' and decay's
# steps. Dropout masks after a mid-epoch resume are other draws than the uninterrupted run's
# (MXNet cannot save its generator; it is reseeded per epoch and at the resume), as before.
RESUMABLE = dict(nlayers=2, alpha=2, beta=1, wd=1e-4, variable_bptt=True, optimizer="nt-asgd",
                 nonmono=1)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("small"), make_source(symbols=6),
                        tokens=(6_000, 1_000, 1_000))


def scripted_validation(monkeypatch, losses):
    losses = iter(losses)
    monkeypatch.setattr(rnnlm.loop, "split_loss", lambda *a: (next(losses), 100))


def record_weights(monkeypatch):
    """The weights after every training step, in order."""
    seen, original = [], Run.step

    def step(self, *args):
        out = original(self, *args)
        seen.append([p.data(self.ctxs[0]).asnumpy().copy() for p in self.params])
        return out

    monkeypatch.setattr(Run, "step", step)
    return seen


def saved_weights(run_dir):
    model = RNNModel(read_model_config(run_dir / "model.json"))
    model.load_parameters(str(run_dir / "model.params"), ctx=mx.cpu())
    return [p.data().asnumpy() for p in model.collect_params().values()]


def assert_mean_of(steps, run_dir):
    for i, saved in enumerate(saved_weights(run_dir)):
        np.testing.assert_allclose(saved, np.mean([s[i] for s in steps], axis=0), rtol=1e-5,
                                   atol=1e-6)


def test_nt_asgd_averages_once_validation_stalls_and_keeps_lr(small, tmp_path, monkeypatch):
    # epoch 4's 2.6 is worse than the best before the last 2 checks (2.0): average from epoch 5
    scripted_validation(monkeypatch, [2.0, 1.9, 2.5, 2.6, 2.7, 1.0])
    steps = record_weights(monkeypatch)
    argv = train_argv(small, tmp_path, epochs=6, max_batches=3, lr=1.0, optimizer="nt-asgd",
                      nonmono=2)
    assert cli.main(argv) == 0
    assert [r["lr"] for r in metrics(tmp_path)] == [1.0] * 6  # no plateau: the average anneals
    summary = read_json(tmp_path / "summary.json")
    assert summary["averaged_from_epoch"] == 5 and summary["best_epoch"] == 6
    assert len(steps) == 18
    assert_mean_of(steps[12:], tmp_path)  # the weights after each step of epochs 5 and 6


def test_sgd_never_averages(small, tmp_path, monkeypatch):
    scripted_validation(monkeypatch, [2.0, 1.9, 2.5, 2.6])
    assert cli.main(train_argv(small, tmp_path, epochs=4, max_batches=3, lr=1.0)) == 0
    assert read_json(tmp_path / "summary.json")["averaged_from_epoch"] is None


def test_finetuning_averages_anew_from_the_best_weights_and_stops_when_it_stalls(
        small, tmp_path, monkeypatch):
    # main epochs 1-2 (best: 2); fine-tuning 3, 4, 5 (best 4), then 5's 1.7 is worse than 1.6,
    # the best before the last check: stop, though 3 more were allowed
    scripted_validation(monkeypatch, [2.0, 1.5, 1.6, 1.4, 1.7])
    steps = record_weights(monkeypatch)
    loaded, original = [], RNNModel.load_parameters
    monkeypatch.setattr(RNNModel, "load_parameters",
                        lambda self, path, **kw: loaded.append(path.rsplit("/", 1)[-1])
                        or original(self, path, **kw))
    argv = train_argv(small, tmp_path / "run", epochs=2, max_batches=3, lr=1.0,
                      finetune_epochs=6, nonmono=1, no_restore_best=True)
    assert cli.main(argv) == 0
    assert [r["epoch"] for r in metrics(tmp_path / "run")] == [1, 2, 3, 4, 5]
    assert loaded == ["best-e2.params"]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["averaged_from_epoch"] == 3 and summary["best_epoch"] == 4
    assert_mean_of(steps[6:12], tmp_path / "run")


@pytest.mark.parametrize("mode", ["lstm", "mogrifier"])
def test_nt_asgd_and_awd_windows_resume_mid_epoch_like_an_uninterrupted_run(small, tmp_path,
                                                                           monkeypatch, mode):
    flags = dict(RESUMABLE, epochs=1, finetune_epochs=2, log_interval=4, checkpoint_minutes=0)
    if mode == "mogrifier":
        flags.update(mogrifier_rounds=3, mogrifier_rank=2)
    assert cli.main(train_argv(small, tmp_path / "whole", mode, **flags)) == 0
    whole = metrics(tmp_path / "whole")
    with monkeypatch.context() as patch:
        _crash_at_report(patch, 20)  # in epoch 3: fine-tuning, averaging
        with pytest.raises(Crash):
            cli.main(train_argv(small, tmp_path / "cut", mode, **flags))
    record = read_json(tmp_path / "cut" / "checkpoint" / "checkpoint.json")
    assert record["state"]["epoch"] == 3 and record["state"]["batch"] > 0
    assert "average" in record["files"] and record["state"]["average_steps"] > 0
    assert cli.main(train_argv(small, tmp_path / "cut", mode, **flags)) == 0
    assert_same_losses(metrics(tmp_path / "cut"), whole, tol=1e-6)
    a, b = saved_weights(tmp_path / "cut"), saved_weights(tmp_path / "whole")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_a_sigkilled_nt_asgd_run_resumes_its_average(tmp_path):
    """A real kill, mid-way through fine-tuning's first epoch: its checkpoint holds the
    average, and the resumed run ends as the uninterrupted one."""
    paths = write_corpus(tmp_path / "data", make_source(symbols=6), tokens=(20_000, 2_000, 2_000))
    flags = dict(RESUMABLE, epochs=1, finetune_epochs=1, log_interval=10, checkpoint_minutes=0)
    whole = subprocess.run([sys.executable, "-m", "rnnlm.cli",
                            *train_argv(paths, tmp_path / "whole", **flags)],
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    record = run / "checkpoint" / "checkpoint.json"
    job = subprocess.Popen([sys.executable, "-m", "rnnlm.cli", *train_argv(paths, run, **flags)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300

    def averaging():
        if not record.exists():
            return False
        state = read_json(record)["state"]  # written atomically: whole or not there
        return state["epoch"] == 2 and state["batch"] > 0

    while not averaging():
        assert job.poll() is None and time.monotonic() < deadline, "no checkpoint mid-epoch 2"
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert read_json(record)["state"]["average_steps"] > 0
    again = subprocess.run([sys.executable, "-m", "rnnlm.cli", *train_argv(paths, run, **flags)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr and "epoch   1 |" not in again.stderr
    assert_same_losses(metrics(run), metrics(tmp_path / "whole"), tol=1e-6)
