"""MXNet 1.9.1 on numpy 2, through rnnlm.mx: a numpy upgrade that breaks MXNet must fail here."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlm.mx import autograd, gluon, nd
from rnnlm.mx import mxnet as mx

SRC = Path(__file__).resolve().parents[1] / "src" / "rnnlm"


def test_numpy_is_2_and_mxnet_is_the_last_release():
    assert int(np.__version__.split(".")[0]) >= 2
    assert mx.__version__ == "1.9.1"


def test_hybridized_lstm_trains_saves_and_loads(tmp_path):
    mx.random.seed(0)
    net = gluon.nn.HybridSequential()
    net.add(gluon.rnn.LSTM(16, layout="NTC"), gluon.nn.Dense(5, flatten=False))
    net.initialize(mx.init.Uniform(0.1))
    net.hybridize(static_alloc=True, static_shape=True)
    x = nd.array(np.random.default_rng(0).normal(size=(4, 3, 8)))
    y = nd.array(np.random.default_rng(1).integers(0, 5, size=(4, 3)))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    losses = []
    for _ in range(20):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(4)
        losses.append(loss.mean().asscalar())
    assert losses[-1] < losses[0]
    net.save_parameters(str(tmp_path / "p.params"))
    clone = gluon.nn.HybridSequential()
    clone.add(gluon.rnn.LSTM(16, layout="NTC"), gluon.nn.Dense(5, flatten=False))
    clone.load_parameters(str(tmp_path / "p.params"))
    np.testing.assert_allclose(clone(x).asnumpy(), net(x).asnumpy(), rtol=1e-6)


def test_numpy_interop_the_package_uses():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    arr = nd.array(a, dtype="int32")
    np.testing.assert_array_equal(arr.asnumpy(), a)
    assert arr.asnumpy().dtype == np.int32
    assert np.isfinite(nd.array([1.0, 2.0]).sum().asscalar())
    assert mx.nd.norm(nd.array([3.0, 4.0])).asscalar() == 5.0
    parts = gluon.utils.split_and_load(nd.array(a), [mx.cpu(0), mx.cpu(1)], batch_axis=1)
    assert parts[1].shape == (3, 2)
    assert mx.np.array(a).asnumpy().sum() == a.sum()


def test_mxnet_imports_without_what_rnnlm_never_calls_through_it_which_still_imports_after():
    """A fresh process, as a job is: rnnlm.mx leaves out mxnet's optional onnx and scipy.stats
    (half its import time), and the package's own imports of them (export, stats) still work."""
    code = ("import sys, rnnlm.mx as m; print(sorted(n for n in m.UNUSED_BY_RNNLM if n in "
            "sys.modules)); import onnx, scipy.stats; print(scipy.stats.ttest_ind.__name__, "
            "onnx.helper.make_node.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "ttest_ind make_node"]


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_only_rnnlm_mx_imports_mxnet():
    offenders = [p.name for p in SRC.rglob("*.py") if p.name != "mx.py"
                 and any(m.split(".")[0] == "mxnet" for m in _imported_modules(p))]
    assert offenders == []


STAGE_ORDER = ["io", "live", "contention", "config", "memory", "limits", "tune", "plan",
               "provenance", "builds", "mx", "data", "vocab", "batchify", "awd", "softmax",
               "recurrent", "cells", "model", "device", "checkpoint", "step", "progress", "loop",
               "train", "share", "trained", "evaluate", "adapt", "predict", "export", "report",
               "stats", "tables", "plots", "tune_report", "watch", "cli"]


def test_stage_modules_import_only_to_their_left():
    for path in SRC.glob("*.py"):
        name = path.stem
        if name == "__init__":
            continue
        rank = STAGE_ORDER.index(name)  # a new module must take its place in the order
        for module in _imported_modules(path):
            if module.startswith("rnnlm."):
                dep = module.split(".")[1]
                assert STAGE_ORDER.index(dep) < rank, f"{name} imports {dep}"


@pytest.mark.parametrize("package", ["tune", "plan", "awd", "softmax", "cells", "adapt", "export",
                                     "tables",
                                     "cli"])
def test_a_subpackage_imports_only_to_its_left_and_within(package):
    rank = STAGE_ORDER.index(package)
    for path in (SRC / package).glob("*.py"):
        for module in _imported_modules(path):
            if module.startswith("rnnlm.") and module != f"rnnlm.{package}":
                dep = module.split(".")[1]
                assert dep == package or STAGE_ORDER.index(dep) < rank, f"{path.name}: {dep}"
