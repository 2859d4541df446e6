"""Training through the real entry point: learning, tutorial step, schedules, resume, faults."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from markov import make_source, train_argv, write_corpus
from run_folders import make_run

import rnnlm.loop
import rnnlm.train
from rnnlm import cli, device
from rnnlm.builds import Build
from rnnlm.checkpoint import Checkpoint
from rnnlm.device import omp_threads
from rnnlm.io import digest, read_json
from rnnlm.loop import Run
from rnnlm.model import MODES, ModelConfig, RNNModel
from rnnlm.mx import ENGINE, autograd, gluon, nd
from rnnlm.mx import mxnet as mx
from rnnlm.progress import Progress
from rnnlm.provenance import code_digest, settings_digest
from rnnlm.train import TrainConfig

LOSSES = ("train_loss", "train_ppl", "valid_loss", "valid_ppl")


@pytest.fixture(scope="module")
def markov(tmp_path_factory):
    """60k training tokens of a 6-symbol order-2 source: true perplexity 2.64, order-1 4.51."""
    source = make_source(symbols=6, concentration=0.2)
    folder = tmp_path_factory.mktemp("markov")
    return source, write_corpus(folder, source, tokens=(60_000, 10_000, 10_000))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A few thousand tokens: 30 windows of 10 x 20 per epoch, for the mechanics."""
    return write_corpus(tmp_path_factory.mktemp("small"), make_source(symbols=6),
                        tokens=(6_000, 1_000, 1_000))


def metrics_file(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def metrics(run_dir):
    return metrics_file(run_dir / "metrics.csv")


def assert_same_losses(a, b, tol=1e-4):
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b, strict=True):
        for key in LOSSES:
            assert row_a[key] == pytest.approx(row_b[key], rel=tol, abs=tol), key


def test_markov_source_needs_memory_and_its_perplexity_is_exact():
    source = make_source(symbols=6, concentration=0.2)
    assert source.perplexity() < 0.7 * source.order1_perplexity()
    ids = source.sample(200_000, seed=5)
    log_p = np.log(source.table[ids[:-2], ids[1:-1], ids[2:]])
    assert math.exp(-log_p.mean()) == pytest.approx(source.perplexity(), rel=0.01)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_learns_the_markov_source(markov, tmp_path, mode):
    source, paths = markov
    run = tmp_path / mode
    argv = train_argv(paths, run, mode, emsize=32, nhid=32, epochs=6, lr_schedule="fixed",
                      decay_after=3, decay_factor=0.3, log_interval=1000)
    assert cli.main(argv) == 0
    out = run / "test.json"
    assert cli.main(["evaluate", "--run-dir", str(run), "--data", str(paths["test"]),
                     "--out", str(out)]) == 0
    ppl = read_json(out)["test_ppl"]
    assert ppl < 1.10 * source.perplexity()  # within 10% of the best possible
    assert ppl < 0.8 * source.order1_perplexity()  # so it remembers two symbols back


def test_a_run_writes_its_outputs_and_drops_its_checkpoint(small, tmp_path):
    run = tmp_path / "run"
    assert cli.main(train_argv(small, run, "gru", epochs=2, max_batches=10, log_interval=4)) == 0
    assert sorted(p.name for p in run.iterdir()) == [
        "metrics.csv", "model.json", "model.params", "progress.csv", "summary.json"]
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["train_ppl"] == pytest.approx(math.exp(r["train_loss"])) for r in rows)
    # 10 windows of 10 x 20 tokens per epoch, a report every 4 windows and at the epoch's end
    assert [r["tokens_seen"] for r in rows] == [2000, 4000]
    progress = metrics_file(run / "progress.csv")
    assert [(r["epoch"], r["batch"]) for r in progress] == [(1, 4), (1, 8), (1, 10), (2, 4),
                                                            (2, 8), (2, 10)]
    assert [r["tokens_seen"] for r in progress] == [800, 1600, 2000, 2800, 3600, 4000]
    assert all(r["train_ppl"] == pytest.approx(math.exp(r["train_loss"])) for r in progress)
    # an epoch's training loss is the token-weighted mean of its reports'
    first = progress[:3]
    assert rows[0]["train_loss"] == pytest.approx(
        (4 * first[0]["train_loss"] + 4 * first[1]["train_loss"] + 2 * first[2]["train_loss"])
        / 10)
    summary = read_json(run / "summary.json")
    assert summary["hyperparameters"]["mode"] == "gru"
    assert summary["hyperparameters"]["batch_size"] == 20
    assert summary["hyperparameters"]["eval_batch_size"] == 10
    assert summary["epochs"] == 2 and summary["best_epoch"] in (1, 2)
    assert summary["best_valid_ppl"] == pytest.approx(min(r["valid_ppl"] for r in rows))
    assert summary["threads"] == omp_threads() and summary["device"] == "cpu"
    assert summary["param_count"] > 0 and summary["tokens_per_s"] > 0
    assert summary["model_sha256"] == digest(run / "model.params")  # what its readers check
    # the whole run (validation and checkpoints too) takes longer than its training windows
    assert summary["wall_seconds"] > summary["train_seconds"] > 0
    made = summary["provenance"]
    assert made["mxnet"] == "1.9.1" and made["numpy"] and made["snakemake"] and made["python"]
    assert made["seed"] == 1 and made["threads"] == omp_threads() and made["device"] == "cpu"
    assert made["engine"] == ENGINE and made["cpu"] and made["gpus"] == []
    assert made["train_code"] == code_digest("train") and made["mxnet_build"] == "mxnet 1.9.1 (CPU)"
    assert made["data_sha256"] == {split: digest(small[split]) for split in ("train", "valid")}
    assert made["settings_sha256"] == settings_digest(summary["hyperparameters"])
    assert made["started"] <= made["finished"] and made["wall_seconds"] == summary["wall_seconds"]
    assert (made["git_commit"] is None) or len(made["git_commit"]) == 40
    # what the machine did meanwhile: this process's CPU time in the training windows
    held = made["conditions"]
    assert 0 < held["cpu_seconds"] and held["cpus"] == os.cpu_count()
    assert held["cpu_per_wall"] == pytest.approx(held["cpu_seconds"] / summary["train_seconds"])
    tokens = summary["tokens_per_s"] * summary["train_seconds"]
    assert held["tokens_per_cpu_s"] == pytest.approx(tokens / held["cpu_seconds"])
    assert held["threads"] == omp_threads()
    assert all(held[key] >= 0 for key in ("load_start", "load_end"))
    # the report tests' hand-made runs (tests/run_folders.py) record the same fields
    fake = make_run(tmp_path / "fake", "tutorial", "gru") / "summary.json"
    assert set(read_json(fake)["provenance"]) == set(made)
    assert read_json(run / "model.json")["mode"] == "gru"


def _tiny_model(seed=0):
    mx.random.seed(seed)
    model = RNNModel(ModelConfig("rnn_tanh", 10, 8, 8, 1, dropout=0.0, tied=True, init_range=0.5))
    model.initialize_weights([mx.cpu()])
    return model


def test_a_step_is_the_tutorial_step(tmp_path):
    """Summed loss, clip_global_norm(grads, clip * bptt * batch), trainer.step(batch)."""
    data = nd.array(np.random.default_rng(0).integers(0, 10, size=(30, 6)))
    ours = _tiny_model()
    run = Run(TrainConfig(lr=0.5, clip=0.05, bptt=4), ours, [mx.cpu()], [data], [data],
              Checkpoint(tmp_path, {}))
    theirs = _tiny_model()
    trainer = gluon.Trainer(theirs.collect_params(), "sgd",
                            {"learning_rate": 0.5, "momentum": 0, "wd": 0})
    loss_fn, hidden = gluon.loss.SoftmaxCrossEntropyLoss(), theirs.begin_state(6, mx.cpu())
    for i in range(0, 12, 4):
        _, norm, _ = run.step(i, 4)
        hidden = [h.detach() for h in hidden]
        with autograd.record():
            out, hidden = theirs(data[i:i + 4], hidden)
            loss = loss_fn(out.reshape((-3, -1)), data[i + 1:i + 5].reshape((-1,)))
        loss.backward()
        grads = [p.grad(mx.cpu()) for p in theirs.collect_params().values()]
        assert norm.asscalar() == pytest.approx(gluon.utils.clip_global_norm(grads, 0.05 * 4 * 6))
        trainer.step(6)
    for a, b in zip(ours.collect_params().values(), theirs.collect_params().values(),
                    strict=True):
        np.testing.assert_allclose(a.data().asnumpy(), b.data().asnumpy(), atol=1e-6)


def test_fixed_decay_multiplies_lr_each_epoch_after_decay_after(small, tmp_path):
    argv = train_argv(small, tmp_path, epochs=4, max_batches=3, lr=1.0, lr_schedule="fixed",
                      decay_after=2, decay_factor=0.5)
    assert cli.main(argv) == 0
    assert [r["lr"] for r in metrics(tmp_path)] == [1.0, 1.0, 0.5, 0.25]


def test_plateau_quarters_lr_and_goes_back_to_the_best_weights(small, tmp_path, monkeypatch):
    scripted = iter([2.0, 2.5, 2.6, 1.5])  # validation losses of epochs 1..4
    monkeypatch.setattr(rnnlm.loop, "split_loss", lambda *a: (next(scripted), 100))
    loaded = []
    original = RNNModel.load_parameters
    monkeypatch.setattr(RNNModel, "load_parameters",
                        lambda self, path, **kw: loaded.append(path.rsplit("/", 1)[-1])
                        or original(self, path, **kw))
    assert cli.main(train_argv(small, tmp_path, epochs=4, max_batches=3, lr=1.0)) == 0
    assert [r["lr"] for r in metrics(tmp_path)] == [1.0, 1.0, 0.25, 0.0625]
    assert loaded == ["best-e1.params", "best-e1.params"]
    summary = read_json(tmp_path / "summary.json")
    assert summary["best_epoch"] == 4 and summary["best_valid_ppl"] == pytest.approx(math.exp(1.5))


def test_plateau_without_restore_best_quarters_lr_and_trains_on(small, tmp_path, monkeypatch):
    """The PyTorch example's schedule: lr / 4 on no improvement, the weights kept as they are."""
    scripted = iter([2.0, 2.5, 2.6, 1.5])
    monkeypatch.setattr(rnnlm.loop, "split_loss", lambda *a: (next(scripted), 100))
    loaded = []
    monkeypatch.setattr(RNNModel, "load_parameters", lambda self, path, **kw: loaded.append(path))
    argv = train_argv(small, tmp_path, epochs=4, max_batches=3, lr=1.0, no_restore_best=True)
    assert cli.main(argv) == 0
    assert [r["lr"] for r in metrics(tmp_path)] == [1.0, 1.0, 0.25, 0.0625]
    assert loaded == []
    assert read_json(tmp_path / "summary.json")["best_epoch"] == 4


def test_the_same_seed_repeats_a_run_with_dropout(small, tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        argv = train_argv(small, tmp_path / name, nlayers=2, dropout=0.3, seed=seed, epochs=2)
        assert cli.main(argv) == 0
        runs[name] = metrics(tmp_path / name)
    assert_same_losses(runs["a"], runs["b"], tol=1e-7)
    assert runs["a"][0]["train_loss"] != runs["c"][0]["train_loss"]


class Crash(Exception):
    pass


def _crash_at_report(monkeypatch, n):
    """Make the n-th progress report raise, as a killed job would stop there."""
    calls = iter(range(1, 10_000))
    original = Progress.report

    def report(self, *args):
        if next(calls) == n:
            raise Crash
        return original(self, *args)

    monkeypatch.setattr(Progress, "report", report)


def test_resume_mid_epoch_ends_like_an_uninterrupted_run(small, tmp_path, monkeypatch, caplog):
    flags = dict(epochs=2, log_interval=4, checkpoint_minutes=0)  # checkpoint at every report
    assert cli.main(train_argv(small, tmp_path / "whole", **flags)) == 0
    with monkeypatch.context() as patch:
        _crash_at_report(patch, 11)  # epoch 2, after its second report (8 windows)
        with pytest.raises(Crash):
            cli.main(train_argv(small, tmp_path / "cut", **flags))
    saved = read_json(tmp_path / "cut" / "checkpoint" / "checkpoint.json")["state"]
    assert (saved["epoch"], saved["batch"], len(saved["metrics"])) == (2, 8, 1)
    caplog.clear()
    caplog.set_level("INFO")
    assert cli.main(train_argv(small, tmp_path / "cut", **flags)) == 0
    assert "epoch 2 after 8 of 30 windows" in caplog.text
    assert_same_losses(metrics(tmp_path / "cut"), metrics(tmp_path / "whole"))
    assert not (tmp_path / "cut" / "checkpoint").exists()


def test_a_checkpoint_of_other_settings_is_refused(small, tmp_path, monkeypatch, capsys):
    with monkeypatch.context() as patch:
        _crash_at_report(patch, 4)  # epoch 2: the checkpoint of epoch 1 is there
        with pytest.raises(Crash):
            cli.main(train_argv(small, tmp_path, epochs=2, log_interval=10, lr=0.3))
    assert cli.main(train_argv(small, tmp_path, epochs=2, log_interval=10, lr=0.5)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings (lr: 0.3 -> 0.5)" in err
    assert "delete" in err and "checkpoint" in err
    assert cli.main(train_argv(small, tmp_path, epochs=2, log_interval=10, lr=0.3)) == 0


def _damage_params(folder, how):
    """Damage the parameters a checkpoint's record names: "corrupt" keeps the size (a disk
    error), "truncate" halves it (a write the system lost)."""
    path = folder / read_json(folder / "checkpoint.json")["files"]["params"]
    data = bytearray(path.read_bytes())
    if how == "corrupt":
        middle = len(data) // 2
        data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    else:
        del data[len(data) // 2:]
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("how", "legacy"), [("corrupt", False), ("truncate", False),
                                             ("truncate", True)])
def test_a_damaged_checkpoint_is_set_aside_and_the_run_starts_over(small, tmp_path, monkeypatch,
                                                                   caplog, how, legacy):
    flags = dict(epochs=2, log_interval=10)
    assert cli.main(train_argv(small, tmp_path / "whole", **flags)) == 0
    run = tmp_path / "cut"
    with monkeypatch.context() as patch:
        _crash_at_report(patch, 4)  # epoch 2: the checkpoint of epoch 1 is there
        with pytest.raises(Crash):
            cli.main(train_argv(small, run, **flags))
    record = read_json(run / "checkpoint" / "checkpoint.json")
    assert set(record["sha256"]) == set(record["files"].values())
    if legacy:  # a checkpoint written before digests were kept
        del record["sha256"]
        (run / "checkpoint" / "checkpoint.json").write_text(json.dumps(record))
    damaged = _damage_params(run / "checkpoint", how)
    kept = {p.name: p.read_bytes() for p in damaged.parent.iterdir()}
    caplog.set_level("INFO")
    assert cli.main(train_argv(small, run, **flags)) == 0
    aside = [p for p in run.iterdir() if p.name.startswith("checkpoint.damaged-")]
    assert len(aside) == 1 and {p.name: p.read_bytes() for p in aside[0].iterdir()} == kept
    reason = ("MXNet cannot read it: Invalid NDArray file format" if legacy else
              f"sha256 {digest(aside[0] / damaged.name)}, checkpoint.json records "
              f"{record['sha256'][damaged.name]}")
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == [f"{damaged} is damaged ({reason}): set aside as {aside[0]}, not resumed "
                       "from; the run starts over without it"]
    assert "resuming" not in caplog.text
    assert_same_losses(metrics(run), metrics(tmp_path / "whole"))
    assert not (run / "checkpoint").exists()


def test_a_checkpoint_record_that_is_not_json_is_set_aside(small, tmp_path, monkeypatch, caplog):
    with monkeypatch.context() as patch:
        _crash_at_report(patch, 4)
        with pytest.raises(Crash):
            cli.main(train_argv(small, tmp_path, epochs=2, log_interval=10))
    (tmp_path / "checkpoint" / "checkpoint.json").write_text('{"format": 1, "fing')
    assert cli.main(train_argv(small, tmp_path, epochs=2, log_interval=10)) == 0
    assert "checkpoint.json is damaged (not valid JSON): set aside as " in caplog.text
    assert [row["epoch"] for row in metrics(tmp_path)] == [1, 2]
    assert not (tmp_path / "checkpoint").exists()


def test_a_huge_lr_stops_with_a_clear_error(small, tmp_path, capsys):
    argv = train_argv(small, tmp_path, "rnn_relu", lr=1e6, log_interval=5)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnlm train: error: training ") and err.count("\n") == 1
    assert "at epoch 1 batch" in err and "lower --lr (now 1e+06) or --clip" in err
    assert not (tmp_path / "summary.json").exists()


def test_a_nan_names_its_batch_and_keeps_the_last_good_checkpoint(small, tmp_path, monkeypatch,
                                                                   capsys):
    calls = iter(range(1, 10_000))
    original = rnnlm.loop.global_norm

    def poisoned(grads):
        norm = original(grads)
        return norm * np.nan if next(calls) == 13 else norm  # epoch 2, window 3

    flags = dict(epochs=3, max_batches=10, log_interval=5)
    with monkeypatch.context() as patch:
        patch.setattr(rnnlm.loop, "global_norm", poisoned)
        assert cli.main(train_argv(small, tmp_path, **flags)) == 1
    err = capsys.readouterr().err
    assert "gradient norm became nan at epoch 2 batch 3" in err
    assert "last good checkpoint (epoch 2 after 0 windows) stays in" in err
    assert cli.main(train_argv(small, tmp_path, **flags)) == 0  # and it resumes from there
    assert [r["epoch"] for r in metrics(tmp_path)] == [1, 2, 3]


def test_progress_is_a_log_line_per_report_off_a_terminal(small, tmp_path, caplog):
    caplog.set_level("INFO")
    assert cli.main(train_argv(small, tmp_path, log_interval=10)) == 0
    lines = [r.getMessage() for r in caplog.records if "ms/batch" in r.getMessage()]
    assert len(lines) == 3 and "30/    30 batches" in lines[-1]
    assert all("tok/s" in line and "ppl" in line for line in lines)


def test_progress_is_a_bar_on_a_terminal_and_a_status_file_for_rnnlm_watch(tmp_path):
    class Terminal:
        text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    term = Terminal()
    state = rnnlm.train.RunState(lr=1.0, epoch=2, batch=15, seconds=3.0, metrics=[
        {"epoch": 1, "valid_ppl": 9.5}])
    progress = Progress(tmp_path / "checkpoint" / "live.json", 4, term)
    progress.valid_seconds = 0.7
    progress.report(state, 30, 1.0, 2000, 0.5, 10)
    assert term.text.startswith("\repoch 2 [###############               ] 15/30 loss 1.000")
    assert "ppl 2.7" in term.text and "4,000 tok/s" in term.text
    live = read_json(tmp_path / "checkpoint" / "live.json")
    assert live["pid"] == os.getpid() and time.time() - 60 < live["updated"] <= time.time()
    assert {k: live[k] for k in ("epoch", "epochs", "window", "windows", "valid_ppl",
                                 "seconds_per_window", "valid_seconds")} == {
        "epoch": 2, "epochs": 4, "window": 15, "windows": 30, "valid_ppl": 9.5,
        "seconds_per_window": 0.2, "valid_seconds": 0.7}
    assert live["tokens_per_s"] == 4000 and live["train_ppl"] == pytest.approx(math.e)


def test_bad_arrays_are_clear_errors(small, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.full((10, 4), 99, dtype=np.int32))
    argv = train_argv(small, tmp_path / "run")
    argv[argv.index("--train") + 1] = str(tmp_path / "big.npy")
    assert cli.main(argv) == 1
    assert "ids reach 99 but the vocabulary has 6 words" in capsys.readouterr().err
    argv[argv.index("--train") + 1] = str(tmp_path / "missing.npy")
    assert cli.main(argv) == 1
    assert "run the batchify stage first" in capsys.readouterr().err


def test_a_folder_given_for_an_input_file_is_one_line_naming_it(small, tmp_path, capsys):
    """`--valid DIR` was an IsADirectoryError traceback; every path the system refuses is one
    line naming the path, whichever stage and flag it came from."""
    argv = train_argv(small, tmp_path / "run")
    argv[argv.index("--valid") + 1] = str(tmp_path)
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == (
        f"rnnlm train: error: {tmp_path}: a directory where a file is expected; pass the "
        "file's path\n")
    assert not (tmp_path / "run" / "model.params").exists()


# --- devices and threads -------------------------------------------------------------------


def test_gpu_asked_for_where_mxnet_sees_none_fails_before_any_work(small, tmp_path, capsys):
    if mx.context.num_gpus() > 0:
        pytest.skip("this machine has a GPU")
    argv = train_argv(small, tmp_path, device="gpu")
    argv[argv.index("--train") + 1] = str(tmp_path / "not-read.npy")  # the GPU check comes first
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == ("rnnlm train: error: --device gpu, but MXNet sees no GPU: this is its CPU "
                   "build; install a CUDA build with make setup GPU=cu117 (or uv sync --extra "
                   "cu117), see the README's GPU section, or run with --device cpu\n")


def test_a_cuda_build_without_driver_points_at_the_driver(small, tmp_path, monkeypatch, capsys):
    def broken():
        raise mx.base.MXNetError("CUDA: no CUDA-capable device is detected")

    monkeypatch.setattr(mx.context, "num_gpus", broken)
    monkeypatch.setattr(device, "BUILD", Build("mxnet-cu112", "1.9.1"))
    assert cli.main(train_argv(small, tmp_path, device="gpu")) == 1
    assert capsys.readouterr().err == (
        "rnnlm train: error: --device gpu, but MXNet sees no GPU: mxnet-cu112 1.9.1 (CUDA 11.2) "
        "is installed, so the NVIDIA driver is missing, too old or hides them; nvidia-smi must "
        "list a GPU and a CUDA Version of 11.2 or newer (check CUDA_VISIBLE_DEVICES too), or run "
        "with --device cpu\n")


def test_more_gpus_than_visible_is_an_error(small, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mx.context, "num_gpus", lambda: 1)
    assert cli.main(train_argv(small, tmp_path, device="gpu", gpus=2)) == 1
    err = capsys.readouterr().err
    assert "--gpus 2, but MXNet sees only 1 GPU(s); use --gpus 1 or fewer" in err


def test_several_gpus_split_each_batch_and_train_as_one(small, tmp_path, monkeypatch):
    """Two stand-in devices (cpu(0), cpu(1)) for two GPUs: the same run as on one device."""
    flags = dict(epochs=2, max_batches=15)
    assert cli.main(train_argv(small, tmp_path / "one", **flags)) == 0
    monkeypatch.setattr(mx.context, "num_gpus", lambda: 2)
    monkeypatch.setattr(mx, "gpu", lambda i=0: mx.cpu(i))
    placed = []
    original = rnnlm.train.load_array
    monkeypatch.setattr(rnnlm.train, "load_array",
                        lambda *a: placed.append(original(*a)) or placed[-1])
    assert cli.main(train_argv(small, tmp_path / "two", device="gpu", gpus=2, **flags)) == 0
    train_parts, valid_parts = placed
    assert [p.context for p in train_parts] == [mx.cpu(0), mx.cpu(1)]
    assert [p.shape[1] for p in train_parts] == [10, 10]  # batch 20 split in two
    assert [p.shape[1] for p in valid_parts] == [5, 5]
    assert_same_losses(metrics(tmp_path / "two"), metrics(tmp_path / "one"), tol=1e-5)
    summary = read_json(tmp_path / "two" / "summary.json")
    assert (summary["device"], summary["gpus"]) == ("gpu", 2)


def _rnnlm(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "rnnlm.cli", *argv], capture_output=True,
                          text=True, **kwargs)


def test_threads_reach_mxnet_and_the_summary(small, tmp_path):
    """A fresh process, as in a pipeline job: --threads is what MXNet's operators get."""
    threads = max(1, (os.cpu_count() or 2) // 2) + 1  # not MXNet's default (half the cores)
    result = _rnnlm(*train_argv(small, tmp_path, threads=threads, max_batches=2), timeout=120)
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "summary.json")
    assert summary["threads"] == summary["provenance"]["threads"] == threads
    # the CLI chose the engine before mxnet loaded, and MXNet says it started it
    assert summary["provenance"]["engine"] == "NaiveEngine"
    assert "MXNet start using engine: NaiveEngine" in result.stderr


def test_a_killed_run_resumes_after_its_last_epoch_and_ends_the_same(markov, tmp_path):
    _, paths = markov
    flags = dict(emsize=32, nhid=32, epochs=3, log_interval=100)
    whole = _rnnlm(*train_argv(paths, tmp_path / "whole", **flags), timeout=300)
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    record = run / "checkpoint" / "checkpoint.json"
    job = subprocess.Popen([sys.executable, "-m", "rnnlm.cli", *train_argv(paths, run, **flags)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (record.exists() and read_json(record)["state"]["epoch"] == 2):
        assert job.poll() is None and time.monotonic() < deadline, "no checkpoint of epoch 1"
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)  # after epoch 1, somewhere in epoch 2
    job.wait()
    assert (read_json(record)["state"]["epoch"], read_json(record)["state"]["batch"]) == (2, 0)
    again = _rnnlm(*train_argv(paths, run, **flags), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr and "epoch 2 after 0 of 300 windows" in again.stderr
    assert "epoch   1 |" not in again.stderr  # epoch 1 is not trained again
    assert "end of epoch   2" in again.stderr and "end of epoch   3" in again.stderr
    assert_same_losses(metrics(run), metrics(tmp_path / "whole"))
    assert read_json(run / "summary.json")["threads"] == 1
