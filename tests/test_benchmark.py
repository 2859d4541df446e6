"""The speed benchmark: the fast trainer computes what the tutorial's loop does, PyTorch's loop
computes it too or is refused, and the script prints its JSON lines. Speed itself is read from
the script's figures, never asserted here.

The tests that need torch look for it (conftest.torch_python) in this interpreter, then in
$RNNLM_TORCH_PYTHON, then in ../torchenv beside the repository, and skip without it.
"""

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import torch_python

from rnnlm import step
from rnnlm.checkpoint import Checkpoint
from rnnlm.loop import Run
from rnnlm.model import FUSED, ModelConfig, RNNModel
from rnnlm.mx import mxnet as mx
from rnnlm.mx import nd
from rnnlm.train import TrainConfig

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import figures  # noqa: E402
import opprofile  # noqa: E402
import pytorch_line  # noqa: E402
import reference  # noqa: E402
import throughput  # noqa: E402
import workload  # noqa: E402

KEYS = {"what", "mode", "experiment", "tokens_per_s", "gflops", "seconds", "peak_rss_mb"}
TINY = ("experiments:\n  tiny: {emsize: 8, nhid: 8, nlayers: 1, batch_size: 4,"
        " eval_batch_size: 2, bptt: 3}\nthreads: 1\n")


def throughput_script(tmp_path, *flags, mode="gru", check=True):
    """benchmarks/throughput.py on the tiny experiment: its JSON lines and the finished process."""
    config = tmp_path / "config.yaml"
    config.write_text(TINY)
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "throughput.py"), "--mode", mode, "--experiment",
         "tiny", "--batches", "2", "--threads", "1", "--repeats", "1", "--synthetic",
         "--config", str(config), *flags],
        capture_output=True, text=True, check=check, timeout=120, cwd=tmp_path)
    return [json.loads(line) for line in out.stdout.splitlines()], out


def fake_worker(tmp_path, setup_reply):
    """An executable that answers the worker protocol like pytorch_loop.py, with this setup."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""\
        import json, sys
        print(json.dumps({{"torch": "fake"}}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)["cmd"]
            reply = {setup_reply!r} if cmd == "setup" else {{"losses": [0.0], "loss": 0.0}}
            print(json.dumps({{**reply, "peak_rss_mb": 1.0}}), flush=True)
        """))
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("update", ["cpu", "gpu"])
@pytest.mark.parametrize("fused", [False, True], ids=["stacked", "tutorial-block"])
@pytest.mark.parametrize("mode", FUSED)
def test_the_fast_trainer_and_the_tutorial_loop_agree(tmp_path, monkeypatch, mode, fused, update,
                                                      tied):
    """Same weights and windows, dropout 0, a clip that bites: the same losses and weights,
    whether the reference stacks one-layer blocks or runs the tutorial's fused one, and along
    both update paths: the CPU's (the clip factor read on the host; an untied embedding's
    gradient row_sparse) and a GPU's (the factor left on the device, dense gradients)."""
    if update == "gpu":
        monkeypatch.setattr(step, "HOST_RATE_DEVICES", ())
    rng = np.random.default_rng(0)
    data = nd.array(rng.integers(0, 30, size=(40, 6)), dtype="float32")
    config = ModelConfig(mode, 30, emsize=12, nhid=12, nlayers=2, dropout=0.0, init_range=0.3,
                         tied=tied)
    train = TrainConfig(lr=0.5, clip=0.02, bptt=5)
    mx.random.seed(3)
    ours = RNNModel(config, sparse_grad=update == "cpu")
    ours.initialize_weights([mx.cpu()])
    assert ours.embedding.weight.grad().stype == ("row_sparse" if update == "cpu" and not tied
                                                  else "default")
    ours.hybridize(static_alloc=True, static_shape=True)
    theirs = reference.TutorialModel(config, fused=fused)
    theirs.initialize(ctx=mx.cpu())
    reference.copy_weights(ours, theirs)
    run = Run(train, ours, [mx.cpu()], [data], [data], Checkpoint(tmp_path, {}))
    loop = reference.ReferenceLoop(theirs, data, train.lr, train.max_norm(6), mx.cpu())
    fast = [run.step(start, length) for start, length in run.windows]  # the last one is short
    slow = [loop.step(start, train.bptt) for start, _ in run.windows]
    assert any(norm.asscalar() > train.max_norm(6) for _, norm, _ in fast)  # clipping happened
    np.testing.assert_allclose([loss.asscalar() for loss, _, _ in fast], slow, rtol=1e-4)
    for a, b in zip(ours.arrays().values(), theirs.collect_params().values(), strict=True):
        np.testing.assert_allclose(a.asnumpy(), b.data().asnumpy(), rtol=1e-4, atol=1e-5)


def test_flops_of_a_window_by_hand():
    # rnn_tanh, 1 layer, E = H = 2, V = 10, B = 3, T = 1: products 3x2x10, 3x2x2, 3x2x2
    forward = 2 * (3 * 2 * 10 + 3 * 2 * 2 + 3 * 2 * 2) + 3 * 10 + 2 * 3 * 2 + 4 * 3 * 10
    assert workload.window_flops("rnn_tanh", 2, 2, 1, 10, 3, 1, train=False) == forward
    backward = 2 * 2 * (3 * 2 * 10 + 3 * 2 * 2 + 3 * 2 * 2) + 3 * 10 + 2 * 3 * 2 + 2 * 3 * 10
    assert workload.window_flops("rnn_tanh", 2, 2, 1, 10, 3, 1) == forward + backward + 3 * 2
    # an LSTM's layer is 4 gates wide: 6 more columns in its two products (each run forward and
    # twice backward) and in its two biases (forward and backward)
    extra = workload.window_flops("lstm", 2, 2, 1, 10, 3, 1) - workload.window_flops(
        "rnn_tanh", 2, 2, 1, 10, 3, 1)
    assert extra == 3 * 2 * (3 * 2 * 6 + 3 * 2 * 6) + 2 * 2 * 3 * 6


@pytest.mark.parametrize("flags", [["--profile", "ops.txt"], ["--tutorial-block"]],
                         ids=["stacked-profiled", "tutorial-block"])
def test_the_script_prints_one_json_line_per_measurement(tmp_path, flags):
    lines, _ = throughput_script(tmp_path, "--torch-python", sys.executable, *flags)
    assert [line["what"] for line in lines][:4] == ["train", "eval", "reference", "gemm"]
    for line in lines:
        assert KEYS <= set(line)
        assert (line["mode"], line["experiment"]) == ("gru", "tiny")
        assert line["tokens_per_s"] > 0 and line["peak_rss_mb"] > 0
        # window_flops counts training and evaluation windows, not a dynamic pass's updates
        assert line["gflops"] is None if line["what"] == "dynamic" else line["gflops"] > 0
    train = lines[0]
    assert train["data"] == "generated" and train["data_seconds"] is None
    assert train["x_reference"] == pytest.approx(lines[2]["seconds"] / train["seconds"])
    assert lines[3]["x_reference"] == pytest.approx(lines[2]["seconds"] / lines[3]["seconds"])
    assert lines[2]["block"] == ("fused" if "--tutorial-block" in flags else "stacked")
    if "--profile" in flags:  # the trainer's operators, timed by MXNet's profiler
        ops = (tmp_path / "ops.txt").read_text()
        assert "FullyConnected" in ops and "sgd_update" in ops


def test_the_versus_line_times_the_trainer_with_awds_regularisers_beside_it(tmp_path):
    awd = ["dropout_e=0.1", "dropout_i=0.4", "dropout_h=0.25", "dropout_o=0.4",
           "weight_dropout=0.5", "alpha=2", "beta=1", "wd=1.2e-6", "variable_bptt=true",
           "optimizer=nt-asgd"]
    lines, _ = throughput_script(tmp_path, *[f for item in awd for f in ("--versus", item)])
    by_what = {line["what"]: line for line in lines}
    versus = by_what["versus"]
    assert versus["set"] == awd and versus["tokens_per_s"] > 0
    assert versus["x_train"] == pytest.approx(by_what["train"]["seconds"] / versus["seconds"])
    lines, out = throughput_script(tmp_path, "--versus", "dropout_x=1", check=False)
    assert out.returncode != 0 and "dropout_x=1: no such setting" in out.stderr


def test_without_torch_the_script_says_how_to_get_it_and_skips_the_line(tmp_path):
    no_torch = tmp_path / "python-without-torch"
    no_torch.write_text(f"#!{sys.executable} -I\nimport sys; sys.modules['torch'] = None\n"
                        f"exec(open(sys.argv[1]).read())\n")
    no_torch.chmod(0o755)
    lines, out = throughput_script(tmp_path, "--torch-python", str(no_torch))
    assert [line["what"] for line in lines] == ["train", "eval", "reference", "gemm", "dynamic"]
    assert "x_pytorch" not in lines[0]
    dynamic = lines[-1]  # dynamic evaluation's pass, beside the eval line of the same model
    assert 0 < dynamic["tokens_per_s"] < dynamic["static_tokens_per_s"]  # it steps, static not
    assert 0 < dynamic["mxnet_update_tokens_per_s"] < dynamic["static_tokens_per_s"]
    assert dynamic["x_eval"] == pytest.approx(dynamic["tokens_per_s"] / lines[1]["tokens_per_s"])
    assert "no PyTorch line: " in out.stderr and "pip install" in out.stderr
    assert "--torch-python" in out.stderr and out.returncode == 0


@pytest.mark.parametrize("wrong", ["params", "first_loss"])
def test_a_pytorch_model_of_another_function_is_refused(tmp_path, wrong):
    """A worker whose model has another parameter count, or another first-window loss from the
    same weights, gets no line: the script says why and exits 1."""
    fake = {"params": 1, "first_loss": 1.0}
    if wrong == "first_loss":  # the right count, so only the loss is left to differ
        config = workload.experiment_settings("tiny", _write(tmp_path, TINY))[0]
        fake["params"] = _param_count("gru", config)
    lines, out = throughput_script(tmp_path, "--torch-python", fake_worker(tmp_path, fake),
                                   check=False)
    assert out.returncode == 1, out.stderr
    assert "pytorch" not in [line["what"] for line in lines]
    reason = "has 1 parameters, the trainer's" if wrong == "params" else (
        "first window's loss is 1, the trainer's")
    assert "PyTorch line refused: " in out.stderr and reason in out.stderr


def test_the_check_compares_within_rtol(tmp_path):
    worker = pytorch_line.PyTorchLoop(fake_worker(tmp_path, {"params": 10, "first_loss": 5.0}),
                                      {})
    worker.check(10, 5.0 * (1 + 0.5 * pytorch_line.RTOL))  # within: no error
    with pytest.raises(pytorch_line.Refused, match="loss is 5, the trainer's 5.001 "):
        worker.check(10, 5.0 * (1 + 2 * pytorch_line.RTOL))
    worker.close()


def _write(tmp_path, text):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def _param_count(mode, settings):
    fields = {k: settings[k] for k in ("emsize", "nhid", "nlayers", "dropout", "tied")}
    model = RNNModel(ModelConfig(mode, workload.PTB_VOCAB, **fields))
    model.initialize_weights([mx.cpu()])
    return model.param_count()


def test_the_readme_row_has_the_pytorch_columns_or_dashes(tmp_path):
    readme = tmp_path / "README.md"
    old = '[["old", "layout"]]'  # a row of another column layout: dropped
    readme.write_text(f"head\n{figures.BEGIN} {old} -->\nold\n{figures.END}\ntail\n")
    lines = [{"what": "train", "experiment": "e", "mode": "lstm", "set": [], "threads": 2,
              "tokens_per_s": 9000.0, "x_pytorch": 1.2, "x_reference": 1.5, "gemm_share": 0.4,
              "gflops": 60.0, "peak_rss_mb": 300.0, "data_seconds": None},
             {"what": "eval", "tokens_per_s": 40000.0, "x_pytorch": 1.6},
             {"what": "reference", "tokens_per_s": 6000.0, "block": "stacked"},
             {"what": "gemm", "x_reference": 3.9, "gflops": 150.0},
             {"what": "pytorch", "tokens_per_s": 7500.0, "eval_tokens_per_s": 25000.0}]
    figures.write_readme(lines, "1.0 1.0 1.0", readme)
    figures.write_readme(lines[:4], "1.0 1.0 1.0", readme)  # the same row, without PyTorch
    lines[0]["threads"] = 1
    figures.write_readme(lines, "1.0 1.0 1.0", readme)  # another row: another thread count
    text = readme.read_text()
    assert text.startswith("head\n") and text.endswith("tail\n") and "old" not in text
    header, _, one, two = text.split("\n")[2:6]
    assert header.count("|") == two.count("|") == len(figures.COLUMNS) + 1
    assert ("| e | lstm | 1 | 9,000 | 7,500 | 1.20 | 6,000 | 1.50 | 3.90 | 40,000 | 25,000 | 1.60"
            in one)
    assert "| e | lstm | 2 | 9,000 | - | - | 6,000 | 1.50 | 3.90 | 40,000 | - | - |" in two


needs_torch = pytest.mark.skipif(torch_python() is None, reason="no Python with torch here")


ADAPTIVE = {"softmax": "adaptive", "cutoffs": (6, 15), "div_value": 2.0}


@needs_torch
@pytest.mark.parametrize(("tied", "softmax"), [(True, {}), (False, {}), (False, ADAPTIVE)],
                         ids=["tied", "untied", "adaptive"])
@pytest.mark.parametrize("mode", FUSED)
def test_pytorch_trains_the_trainer_function(tmp_path, mode, tied, softmax):
    """From the same weights with dropout 0 and a clip that bites, PyTorch's loop gives the
    trainer's losses window after window: same model, loss scale, clip and SGD; with the
    adaptive softmax, PyTorch's AdaptiveLogSoftmaxWithLoss (untied: it has its own weights)."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 30, size=(40, 6)).astype(np.int32)
    config = ModelConfig(mode, 30, emsize=12, nhid=12, nlayers=2, dropout=0.0, init_range=0.3,
                         tied=tied, **softmax)
    train = TrainConfig(lr=0.5, clip=0.02, bptt=5)
    mx.random.seed(3)
    ours = RNNModel(config)
    ours.initialize_weights([mx.cpu()])
    ours.hybridize(static_alloc=True, static_shape=True)
    arrays = ours.arrays().values()
    np.savez(tmp_path / "w.npz", **{f"p{i}": a.asnumpy() for i, a in enumerate(arrays)})
    np.save(tmp_path / "a.npy", arr)
    worker = pytorch_line.PyTorchLoop(torch_python(), {
        "model": dataclasses.asdict(config), "threads": 1, "weights": str(tmp_path / "w.npz"),
        "train": {"lr": train.lr, "bptt": train.bptt, "seed": 1, "max_norm": train.max_norm(6)},
        "arrays": {"train": str(tmp_path / "a.npy"), "valid": str(tmp_path / "a.npy")}})
    run = Run(train, ours, [mx.cpu()], [nd.array(arr)], [nd.array(arr)],
              Checkpoint(tmp_path, {}))
    worker.check(ours.param_count(), throughput.first_window_loss(ours, run))
    assert (run.net.capacity is None) == (not softmax)  # adaptive: the fast path is timed
    fast = [run.step(start, length) for start, length in run.windows]
    assert any(norm.asscalar() > train.max_norm(6) for _, norm, _ in fast)  # clipping happened
    np.testing.assert_allclose(worker.steps(len(run.windows)),
                               [loss.asscalar() for loss, _, _ in fast], rtol=1e-4)
    worker.close()


def test_the_profile_counts_each_call_once():
    """MXNet traces a call twice (overlapping B/E pairs); consecutive calls are separate."""
    def call(name, start, end):
        return [{"cat": "operator", "name": name, "ph": "B", "ts": start, "tid": 1},
                {"cat": "operator", "name": name, "ph": "E", "ts": end, "tid": 1}]

    events = (call("sgd_update", 0, 8) + call("sgd_update", 0, 10)  # one call, traced twice
              + call("sgd_update", 12, 20) + call("sgd_update", 12, 21)  # the next call
              + call("FullyConnected", 30, 1030) + [{"cat": "memory", "ph": "B", "name": "x"}])
    assert [(n, s) for n, s, _ in opprofile.calls(events)] == [
        ("sgd_update", 0), ("sgd_update", 12), ("FullyConnected", 30)]
    # three windows, each one FullyConnected (3, 1, 2 ms) then two sgd_update calls
    events = []
    for w, ms in enumerate((3, 1, 2)):
        t = 10_000 * w
        events += call("FullyConnected", t, t + 1000 * ms) + call("sgd_update", t + 5000, t + 5100)
        events += call("sgd_update", t + 5200, t + 5300)
    table = opprofile.median_table(events, windows=3)
    assert [line.split() for line in table.splitlines()[1:]] == [
        ["FullyConnected", "2.000", "1.0"], ["sgd_update", "0.200", "2.0"],
        ["sum", "of", "medians", "2.200"]]
