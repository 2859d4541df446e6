"""The speed benchmark: the fast trainer computes what the tutorial's loop does, and the script
prints its JSON lines. Speed itself is read from the script's figures, never asserted here."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlm.checkpoint import Checkpoint
from rnnlm.model import MODES, ModelConfig, RNNModel
from rnnlm.mx import mxnet as mx
from rnnlm.mx import nd
from rnnlm.train import Run, TrainConfig

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import reference  # noqa: E402
import throughput  # noqa: E402

KEYS = {"what", "mode", "experiment", "tokens_per_s", "gflops", "seconds", "peak_rss_mb"}


@pytest.mark.parametrize("fused", [False, True], ids=["stacked", "tutorial-block"])
@pytest.mark.parametrize("mode", MODES)
def test_the_fast_trainer_and_the_tutorial_loop_agree(tmp_path, mode, fused):
    """Same weights and windows, dropout 0, a clip that bites: the same losses and weights,
    whether the reference stacks one-layer blocks or runs the tutorial's fused one."""
    rng = np.random.default_rng(0)
    data = nd.array(rng.integers(0, 30, size=(40, 6)), dtype="float32")
    config = ModelConfig(mode, 30, emsize=12, nhid=12, nlayers=2, dropout=0.0, init_range=0.3)
    train = TrainConfig(lr=0.5, clip=0.02, bptt=5)
    mx.random.seed(3)
    ours = RNNModel(config)
    ours.initialize_weights([mx.cpu()])
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
    for a, b in zip(ours.collect_params().values(), theirs.collect_params().values(),
                    strict=True):
        np.testing.assert_allclose(a.data().asnumpy(), b.data().asnumpy(), rtol=1e-4, atol=1e-5)


def test_flops_of_a_window_by_hand():
    # rnn_tanh, 1 layer, E = H = 2, V = 10, B = 3, T = 1: products 3x2x10, 3x2x2, 3x2x2
    forward = 2 * (3 * 2 * 10 + 3 * 2 * 2 + 3 * 2 * 2) + 3 * 10 + 2 * 3 * 2 + 4 * 3 * 10
    assert throughput.window_flops("rnn_tanh", 2, 2, 1, 10, 3, 1, train=False) == forward
    backward = 2 * 2 * (3 * 2 * 10 + 3 * 2 * 2 + 3 * 2 * 2) + 3 * 10 + 2 * 3 * 2 + 2 * 3 * 10
    assert throughput.window_flops("rnn_tanh", 2, 2, 1, 10, 3, 1) == forward + backward + 3 * 2
    # an LSTM's layer is 4 gates wide: 6 more columns in its two products (each run forward and
    # twice backward) and in its two biases (forward and backward)
    extra = throughput.window_flops("lstm", 2, 2, 1, 10, 3, 1) - throughput.window_flops(
        "rnn_tanh", 2, 2, 1, 10, 3, 1)
    assert extra == 3 * 2 * (3 * 2 * 6 + 3 * 2 * 6) + 2 * 2 * 3 * 6


@pytest.mark.parametrize("flags", [["--profile", "ops.txt"], ["--tutorial-block"]],
                         ids=["stacked-profiled", "tutorial-block"])
def test_the_script_prints_one_json_line_per_measurement(tmp_path, flags):
    config = tmp_path / "config.yaml"
    config.write_text("experiments:\n  tiny: {emsize: 8, nhid: 8, nlayers: 1, batch_size: 4,"
                      " eval_batch_size: 2, bptt: 3}\nthreads: 1\n")
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "throughput.py"), "--mode", "gru", "--experiment",
         "tiny", "--batches", "2", "--threads", "1", "--repeats", "1", "--synthetic",
         "--config", str(config), *flags],
        capture_output=True, text=True, check=True, timeout=120, cwd=tmp_path)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["what"] for line in lines] == ["train", "eval", "reference", "gemm"]
    for line in lines:
        assert KEYS <= set(line)
        assert (line["mode"], line["experiment"]) == ("gru", "tiny")
        assert line["tokens_per_s"] > 0 and line["gflops"] > 0 and line["peak_rss_mb"] > 0
    train = lines[0]
    assert train["data"] == "generated" and train["data_seconds"] is None
    assert train["x_reference"] == pytest.approx(lines[2]["seconds"] / train["seconds"])
    assert lines[3]["x_reference"] == pytest.approx(lines[2]["seconds"] / lines[3]["seconds"])
    assert lines[2]["block"] == ("fused" if "--tutorial-block" in flags else "stacked")
    if "--profile" in flags:  # the trainer's operators, timed by MXNet's profiler
        ops = (tmp_path / "ops.txt").read_text()
        assert "FullyConnected" in ops and "preloaded_multi_sgd_update" in ops
