"""Dynamic evaluation: the update against its formula on small arrays, scoring before the
update, the decay, every model layout on in-memory models, and `rnnlm dynamic-eval` on a trained
run (lr 0 is `rnnlm evaluate` at batch 1; model.params keeps its bytes)."""

import hashlib
import math
import multiprocessing
import os
import signal

import numpy as np
import pytest
from markov import make_source, train_argv, write_corpus

from rnnlm import cli
from rnnlm.adapt import passes
from rnnlm.adapt.cache import LastLayer
from rnnlm.adapt.dynamic import (
    EPS,
    Adapter,
    Backward,
    Update,
    decay_rates,
    gradient_statistics,
    trained_params,
)
from rnnlm.adapt.grid import choose_then_test
from rnnlm.adapt.passes import Pass, Runner
from rnnlm.device import load_array
from rnnlm.io import RnnlmError, read_json
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.mx import autograd, gluon, nd
from rnnlm.mx import mxnet as mx
from rnnlm.trained import load_model, trained_run

CPU = mx.cpu()
VOCAB = 40


def weights(seed=0, shapes=((3, 4), (5,))):
    """Gluon parameters holding random weights and gradients, and their numpy copies."""
    rng = np.random.default_rng(seed)
    params, values = [], []
    for i, shape in enumerate(shapes):
        p = gluon.Parameter(f"w{i}", shape=shape)
        p.initialize(ctx=CPU)
        theta, grad = rng.normal(size=shape), rng.normal(size=shape)
        p.set_data(nd.array(theta))
        p.grad(CPU)[:] = grad
        params.append(p)
        values.append((p.data(CPU).asnumpy(), grad.astype(np.float32)))
    return params, values


@pytest.mark.parametrize("rule", ["rms", "sgd"])
def test_one_update_is_its_formula(rule):
    params, values = weights()
    rng = np.random.default_rng(1)
    theta0 = [v[0] + rng.normal(size=v[0].shape).astype(np.float32) for v in values]
    ms = [np.abs(rng.normal(size=v[0].shape)).astype(np.float32) * 1e-3 for v in values]
    ms[0][0, 0] = 1.0  # a rate above 1 / decay: dynamiceval.py clips it there
    rates = decay_rates([nd.array(m) for m in ms])
    gsum = np.mean([m.mean() for m in ms])
    lr, decay = 0.05, 0.3
    Update(params, CPU, [nd.array(t) for t in theta0], [nd.array(m) for m in ms], rates, rule,
           lr, decay)()
    for p, (theta, grad), t0, m in zip(params, values, theta0, ms, strict=True):
        if rule == "rms":
            rate = np.minimum(m / gsum, 1 / decay)
            expected = theta + decay * rate * (t0 - theta) - lr * grad / (m + EPS)
        else:
            expected = theta + decay * (t0 - theta) - lr * grad
        np.testing.assert_allclose(p.data(CPU).asnumpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", ["rms", "sgd"])
def test_the_decay_pulls_back_to_theta0_geometrically(rule):
    """With no gradient (lr 0 in effect), weights moved away from theta0 return by the factor
    1 - decay * rate per update."""
    params, values = weights(seed=2)
    theta0 = [v[0] + 1.0 for v in values]
    ms = [np.full(v[0].shape, 0.5 * (i + 1), dtype=np.float32) for i, v in enumerate(values)]
    rates = decay_rates([nd.array(m) for m in ms])
    for p in params:
        p.grad(CPU)[:] = 0
    decay = 0.1
    update = Update(params, CPU, [nd.array(t) for t in theta0], [nd.array(m) for m in ms],
                    rates, rule, 1.0, decay)
    for _ in range(5):
        update()
    for p, (theta, _), t0, rate in zip(params, values, theta0, rates, strict=True):
        factor = 1 - decay * (rate.asnumpy() if rule == "rms" else 1.0)
        np.testing.assert_allclose(p.data(CPU).asnumpy() - t0, (theta - t0) * factor ** 5,
                                   rtol=1e-4)


LAYOUTS = {
    **{f"{mode}-{'tied' if tied else 'untied'}": dict(mode=mode, tied=tied)
       for mode in ("rnn_relu", "rnn_tanh", "lstm", "gru") for tied in (True, False)},
    "adaptive-tied": dict(mode="lstm", tied=True, softmax="adaptive", cutoffs=(8, 20)),
    "adaptive-untied": dict(mode="gru", tied=False, softmax="adaptive", cutoffs=(8, 20)),
    "mogrifier-tied": dict(mode="mogrifier", tied=True, mogrifier_rounds=3),
    "mogrifier-untied-rank": dict(mode="mogrifier", tied=False, mogrifier_rounds=2,
                                  mogrifier_rank=4),
    "awd": dict(mode="lstm", tied=True, nlayers=3, dropout_e=0.1, dropout_i=0.3, dropout_h=0.2,
                dropout_o=0.4, weight_dropout=0.5, nhid=24),
}


def build(mode, **overrides):
    fields = dict(vocab_size=VOCAB, emsize=16, nhid=16, nlayers=2, dropout=0.3, init_range=0.3)
    mx.random.seed(0)
    model = RNNModel(ModelConfig(mode, **{**fields, **overrides}))
    model.initialize_weights(CPU)
    model.hybridize(static_alloc=True, static_shape=model.static_shape)
    return model


def stream(steps, batch=1, seed=0):
    p = 1 / np.arange(1, VOCAB + 1)
    ids = np.random.default_rng(seed).choice(VOCAB, size=(steps, batch), p=p / p.sum())
    return nd.array(ids.astype(np.float32))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_scores_each_segment_before_its_update(layout):
    """The static pass is the model's own forward pass; the dynamic pass scores its first
    segment with the trained weights (it would differ if scored after its own step) and the
    later ones with moved weights; every weight array gets a gradient; theta0 comes back."""
    model = build(**LAYOUTS[layout])
    train, test = stream(31, batch=4, seed=1), stream(23, seed=2)
    ms, windows = gradient_statistics(model, train, 5, 100)
    assert windows == 6  # whole windows of 5 rows only: (31 - 1) // 5
    assert all(float(m.min().asscalar()) >= 0 for m in ms)
    assert all(float(m.max().asscalar()) > 0 for m in ms)  # every array has a gradient
    adapter = Adapter(model, CPU, ms, decay_rates(ms))
    static, hidden = adapter.segment_pass(test, 5, None)
    logits, _ = model(test[:-1], model.begin_state(1, CPU))
    log_p = logits.asnumpy() - np.log(np.exp(logits.asnumpy()).sum(-1, keepdims=True))
    expected = np.take_along_axis(log_p, test[1:].asnumpy().astype(int)[..., None], -1)
    np.testing.assert_allclose(static, expected[:, 0, 0], rtol=1e-5)
    assert static.shape == (22,) and hidden.shape == (22, model.config.layer_sizes()[-1])
    before = [p.data(CPU).asnumpy() for p in adapter.params]
    dynamic, _ = adapter.segment_pass(test, 5, adapter.update("rms", 1e-2, 0.01))
    np.testing.assert_array_equal(dynamic[:5], static[:5])
    assert np.abs(dynamic[5:] - static[5:]).min() > 0  # every later token saw moved weights
    # numpy's update on the arrays' memory (a CPU's) is MXNet's operators' (a GPU's), segment by
    # segment: MXNet's next forward reads what numpy wrote, nothing cached from before
    by_mxnet, _ = adapter.segment_pass(test, 5, adapter.update("rms", 1e-2, 0.01, on_host=False))
    np.testing.assert_array_equal(dynamic, by_mxnet)
    for p, b in zip(adapter.params, before, strict=True):
        np.testing.assert_array_equal(p.data(CPU).asnumpy(), b)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_s_gradient_is_autograd_s_with_the_embedding_in_the_graph(layout):
    """Backward adds the looked-up rows' gradient into the embedding matrix itself; every
    weight's gradient is what autograd gives with the lookup inside the graph, for a window
    that reads some words more than once, on the host's path and MXNet's alike."""
    model = build(**LAYOUTS[layout])
    window = stream(6, batch=4, seed=3)
    x, y = window[:5], window[1:]
    ids = x.asnumpy().astype(np.int64)
    assert np.unique(ids).size < ids.size
    params = trained_params(model)
    net = LastLayer(model)
    with autograd.record(train_mode=False):
        logp, _, _ = net(x, y, model.begin_state(4, CPU))
    logp.backward(nd.full(logp.shape, -1.0 / logp.size), train_mode=False)
    expected = [p.grad(CPU).asnumpy() for p in params]
    backward = Backward(model)
    for host in (True, False):
        for p in params:  # what a previous window left: overwritten, never added to
            p.grad(CPU)[:] = 1.0
        backward(x, y, model.begin_state(4, CPU), ids, host)
        got = [p.grad(CPU).asnumpy() for p in params]
        for p, g, e in zip(params, got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7, err_msg=p.name)
        if host:
            on_host = got
    for a, b in zip(on_host, got, strict=True):
        np.testing.assert_array_equal(a, b)  # numpy's sums either way: a GPU's are a CPU's


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on a small Markov corpus, with batch-1 valid and test arrays."""
    folder = tmp_path_factory.mktemp("dynamic")
    paths = write_corpus(folder, make_source(symbols=6), tokens=(6_000, 700, 900),
                         batch_sizes=(20, 1, 1))
    run = folder / "run"
    assert cli.main(train_argv(paths, run, "lstm", nlayers=2)) == 0
    return run, paths


def dynamic_eval(run, paths, out, *flags):
    return cli.main(["dynamic-eval", "--run-dir", str(run), "--train", str(paths["train"]),
                     "--valid", str(paths["valid"]), "--test", str(paths["test"]), "--out",
                     str(out), "--threads", "1", "--ms-windows", "40", *flags])


def test_the_cli_chooses_on_validation_and_never_writes_the_model(trained, tmp_path, caplog):
    run, paths = trained
    digest = hashlib.sha256((run / "model.params").read_bytes()).hexdigest()
    out = tmp_path / "dynamic_eval.json"
    caplog.set_level("INFO")
    assert dynamic_eval(run, paths, out, "--lrs", "1e-4", "3e-3", "--decays", "0.002", "0.02",
                        "--cache-window", "50", "--thetas", "0.5", "--lambdas", "0.1") == 0
    assert hashlib.sha256((run / "model.params").read_bytes()).hexdigest() == digest
    result = read_json(out)
    assert [(p["lr"], p["decay"]) for p in result["grid"]] == [
        (0, 0), (1e-4, 0.002), (1e-4, 0.02), (3e-3, 0.002), (3e-3, 0.02)]  # lr 0 added, once
    best = min(result["grid"], key=lambda point: point["valid_ppl"])
    assert (best["lr"], best["decay"]) == (result["lr"], result["decay"])
    assert best["valid_ppl"] == result["valid_ppl_dynamic"] <= result["valid_ppl"]
    assert result["valid_ppl"] == result["grid"][0]["valid_ppl"]
    assert (result["rule"], result["segment"], result["ms_windows"], result["ms_batch"]) == (
        "rms", 5, 40, 20)
    assert (result["valid_tokens"], result["test_tokens"]) == (699, 899)
    assert result["cache_window"] == 50 and result["cache_theta"] == 0.5
    assert result["valid_ppl_dynamic_cache"] <= result["valid_ppl_dynamic"]
    evaluated = tmp_path / "test.json"
    assert cli.main(["evaluate", "--run-dir", str(run), "--data", str(paths["test"]),
                     "--out", str(evaluated)]) == 0
    assert result["test_ppl"] == pytest.approx(read_json(evaluated)["test_ppl"], rel=1e-6)
    logps = np.load(tmp_path / "dynamic_eval.npz")
    assert logps["test_logp_static"].shape == logps["test_logp_dynamic"].shape == (899,)
    assert math.exp(-logps["test_logp_dynamic"].mean()) == pytest.approx(
        result["test_ppl_dynamic"], rel=1e-12)
    assert "grid point 5/5 (lr 0.003, decay 0.02) on valid: valid ppl" in caplog.text
    assert "tokens/s)" in caplog.text  # the progress the CLI prints on stderr


def test_passes_in_two_worker_processes_give_what_one_process_gives(trained, tmp_path):
    """--threads 2: the grid's passes two at a time in spawned workers of one thread each; the
    perplexities, the choice, the cache on top and the test stream's log-probabilities are
    those of the passes run one after the other in the job's process."""
    run, paths = trained
    results = {}
    for threads in ("1", "2"):
        out = tmp_path / threads / "dynamic_eval.json"
        out.parent.mkdir()
        assert dynamic_eval(run, paths, out, "--lrs", "1e-4", "3e-3", "--decays", "0.02",
                            "--cache-window", "50", "--thetas", "0.5", "--lambdas", "0.1",
                            "--threads", threads) == 0
        results[threads] = read_json(out), np.load(out.with_suffix(".npz"))
    (one, one_logps), (two, two_logps) = results["1"], results["2"]
    assert (one["workers"], two["workers"]) == (1, 2)
    timings = ("seconds", "ms_seconds", "workers")
    assert {k: v for k, v in one.items() if k not in timings} == {
        k: v for k, v in two.items() if k not in timings} | {"grid": [
            {k: v for k, v in point.items() if k != "seconds"} | {"seconds": mine["seconds"]}
            for point, mine in zip(two["grid"], one["grid"], strict=True)]}
    assert one["lr"] > 0 and one["test_ppl_dynamic"] < one["test_ppl"]
    for name in ("test_logp_static", "test_logp_dynamic"):
        np.testing.assert_array_equal(one_logps[name], two_logps[name])


def test_a_worker_that_dies_stops_the_job_in_one_line_not_a_hang(trained):
    """The OOM killer's SIGKILL to a worker: the passes' results then raise a one-line
    RnnlmError (multiprocessing.Pool, used first, would have waited forever: CPython issue
    22393)."""
    run, paths = trained
    model = load_model(trained_run(run, "dynamic evaluation"), CPU)
    streams = {"valid": load_array(paths["valid"], model.config.vocab_size, [CPU])[0]}
    ms = [np.ones(p.shape, dtype=np.float32) for p in trained_params(model)]
    start = (run, {"valid": paths["valid"]}, ms, ms, "rms", 5, "cpu")
    jobs = [Pass("valid", 1e-4, 0.01, f"point {i}") for i in range(4)]
    with Runner(None, streams, "rms", 5, 2, start) as runner:
        for job in jobs:
            runner.submit(job)  # the workers are spawned
        results = runner.results()
        for worker in multiprocessing.active_children():
            os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(RnnlmError, match=r"^a worker process of dynamic evaluation died "):
            list(results)


def test_a_run_without_a_model_is_one_line_naming_it(trained, tmp_path, capsys):
    _, paths = trained
    (tmp_path / "run").mkdir()
    assert dynamic_eval(tmp_path / "run", paths, tmp_path / "dynamic_eval.json") == 1
    assert capsys.readouterr().err == (
        f"rnnlm dynamic-eval: error: {tmp_path / 'run'}: no trained model for dynamic evaluation"
        " (model.json and model.params missing); train the run first (rnnlm train, or the "
        "train rule), or wait until its training ends\n")
    assert not (tmp_path / "dynamic_eval.json").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--segment", "0"], "argument --segment: 0 is not an integer >= 1"),
    (["--lrs=-1e-4"], "argument --lrs: -1e-4 is not a finite number >= 0"),
    (["--decays", "nan"], "argument --decays: nan is not a finite number >= 0"),
    (["--rule", "adam"], "argument --rule: invalid choice: 'adam'"),
])
def test_bad_flags_are_usage_errors(trained, tmp_path, capsys, flags, message):
    run, paths = trained
    with pytest.raises(SystemExit) as stop:
        dynamic_eval(run, paths, tmp_path / "dynamic_eval.json", *flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_diverged_grid_point_is_written_null_and_never_chosen(trained, tmp_path, caplog):
    """A step far too large makes the losses overflow: that point's perplexity is null in the
    JSON (JSON has no infinity) and the choice falls on another; it was an OverflowError that
    stopped the whole job."""
    run, paths = trained
    out = tmp_path / "dynamic_eval.json"
    caplog.set_level("INFO")
    assert dynamic_eval(run, paths, out, "--lrs", "1e4", "--decays", "0", "--rule", "sgd",
                        "--cache-window", "50", "--thetas", "0.5", "--lambdas", "0.1") == 0
    result = read_json(out)
    assert result["grid"][1]["valid_ppl"] is None and result["lr"] == 0
    assert result["test_ppl_dynamic"] == result["test_ppl"]
    # the cache then runs on the static pass's outputs, chosen and applied as on a dynamic one's
    assert result["cache_window"] == 50 and result["test_ppl_dynamic_cache"] <= result["test_ppl"]
    assert "diverged, never chosen (lower the lr grid)" in caplog.text


def test_a_training_array_shorter_than_a_window_is_one_line(trained, tmp_path, capsys):
    run, paths = trained
    short = tmp_path / "train.b20.npy"
    np.save(short, np.load(paths["train"])[:5])
    assert cli.main(["dynamic-eval", "--run-dir", str(run), "--train", str(short), "--valid",
                     str(paths["valid"]), "--test", str(paths["test"]), "--out",
                     str(tmp_path / "dynamic_eval.json")]) == 1
    assert capsys.readouterr().err == (
        "rnnlm dynamic-eval: error: the training array (5 rows) has no window of 6 rows for "
        "the gradient statistics; lower dynamic_eval.segment or train on a longer split\n")


class Simulated:
    """A Runner on a simulated clock: ``workers`` passes at a time, each over validation taking
    10 s, over test 12 s, the static ones 2 s; the valid ppl of each (lr, decay) from ``ppls``."""

    def __init__(self, workers, ppls):
        self.workers, self.ppls = workers, ppls
        self.queue, self.running, self.now, self.started = [], [], 0, {}

    def seconds(self, job):
        return (10 if job.split == "valid" else 12) if job.lr else 2

    def submit(self, job):
        self.queue.append(job)
        self._fill()

    def _fill(self):
        while self.queue and len(self.running) < self.workers:
            job = self.queue.pop(0)
            self.started[job] = self.now
            self.running.append((self.now + self.seconds(job), job))

    def idle(self):
        return len(self.running) + len(self.queue) < self.workers

    def results(self):
        while self.running:
            self.running.sort(key=lambda pair: pair[0])
            self.now, job = self.running.pop(0)
            self._fill()
            ppl = self.ppls[job.lr, job.decay] if job.split == "valid" else 50.0
            yield job, np.full(4, -math.log(ppl)), job.label, self.seconds(job)


def valid_passes(ppls):
    return [Pass("valid", lr, decay, f"valid {lr} {decay}") for lr, decay in ppls]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_free_worker_starts_the_best_point_s_test_pass_before_validation_ends(workers):
    """Three passes over validation on two workers: the third runs alone beside the static
    ones, then beside the test pass of the best point so far (the second), which stays the
    best: the job ends 6 s sooner than with the test pass after validation. One worker: every
    pass in its turn."""
    ppls = {(0.0, 0.0): 100.0, (1.0, 0.1): 90.0, (1.0, 0.2): 80.0, (2.0, 0.1): 85.0}
    on_valid = valid_passes(ppls)
    runner = Simulated(workers, ppls)
    results, best, tested = choose_then_test(runner, on_valid, Pass("test", 0.0, 0.0, "static"))
    assert best[1:] == (2, on_valid[2].label) and set(results) == set(on_valid)
    assert set(tested) == {(0.0, 0.0), (1.0, 0.2)}  # the static test pass and the chosen one's
    [test] = [job for job in runner.started if job.split == "test" and job.lr]
    if workers == 2:  # valid ends at 20 (the third pass, begun at 10)
        assert (runner.started[test], runner.now) == (14, 26)
    else:
        assert (runner.started[test], runner.now) == (3 * 10 + 2 * 2, 3 * 10 + 2 * 2 + 12)


def test_a_test_pass_begun_early_for_a_point_that_loses_costs_no_time():
    """The last pass over validation wins: the early test pass (of the point then best) runs
    on, and the winner's starts as validation ends; the job ends one test pass after
    validation, as with no early start."""
    ppls = {(0.0, 0.0): 100.0, (1.0, 0.1): 90.0, (1.0, 0.2): 80.0, (2.0, 0.1): 70.0}
    on_valid = valid_passes(ppls)
    runner = Simulated(2, ppls)
    _, best, tested = choose_then_test(runner, on_valid, Pass("test", 0.0, 0.0, "static"))
    assert best[1] == 3
    assert set(tested) == {(0.0, 0.0), (1.0, 0.2), (2.0, 0.1)}
    assert {(job.lr, job.decay): start for job, start in runner.started.items()
            if job.split == "test" and job.lr} == {(1.0, 0.2): 14, (2.0, 0.1): 20}
    assert runner.now == 20 + 12


def test_a_job_over_its_memory_is_refused_before_the_model_loads(trained, tmp_path, capsys):
    """--memory-mb (the rule's mem_mb, rnnlm.memory's estimate with the workers) below the
    estimate: one line naming the fix, fewer threads first when there are workers."""
    run, paths = trained
    out = tmp_path / "dynamic_eval.json"
    for threads, fix in (("2", "give the job fewer threads (each pass at a time holds a copy of "
                                "the model) or more memory\n"),
                         ("1", "give the job more memory\n")):
        assert dynamic_eval(run, paths, out, "--threads", threads, "--memory-mb", "150") == 1
        err = capsys.readouterr().err
        assert err.startswith("rnnlm dynamic-eval: error: lstm (nhid 16, emsize 16, nlayers 2, "
                              "6 words, batch 20) needs about ") and err.count("\n") == 1
        assert err.endswith(f"more than the job's mem_mb (150 MB); {fix}"), err
    assert not out.exists()


def test_a_job_stopped_part_way_resumes_where_it_stopped(trained, tmp_path, monkeypatch, caplog):
    """Stopped after its statistics and two passes over validation (the best one's outputs kept
    for the cache), the job run again reads those back, runs the rest, and writes what an
    uninterrupted job writes; its parts folder is then gone. Other settings start afresh."""
    run, paths = trained
    grid = ("--lrs", "1e-4", "3e-3", "--decays", "0.02", "--cache-window", "50", "--thetas",
            "0.5", "--lambdas", "0.1")
    whole, resumed = tmp_path / "whole/dynamic_eval.json", tmp_path / "resumed/dynamic_eval.json"
    for out in (whole, resumed):
        out.parent.mkdir()
    assert dynamic_eval(run, paths, whole, *grid) == 0
    real, ran = passes.run_pass, []

    def stopping(*args):
        if len(ran) == 2:
            raise KeyboardInterrupt  # the job killed while its third pass runs
        ran.append(args[2])
        return real(*args)

    monkeypatch.setattr(passes, "run_pass", stopping)
    with pytest.raises(KeyboardInterrupt):
        dynamic_eval(run, paths, resumed, *grid)
    parts = resumed.with_suffix(".parts")
    assert [job.split for job in ran] == ["valid", "valid"] and not resumed.exists()
    kept = sorted(path.name for path in parts.iterdir())
    assert kept == ["key.json", "pass-valid-lr0.0001-decay0.02.npz",
                    "pass-valid-lr0.003-decay0.02.npz", "statistics.npz"]
    assert sum("hidden" in np.load(parts / name).files for name in kept[1:3]) == 1
    one_lr, rerun = read_json(whole)["lr"], []
    monkeypatch.setattr(passes, "run_pass", lambda *args: rerun.append(args[2]) or real(*args))
    caplog.set_level("INFO")
    assert dynamic_eval(run, paths, resumed, *grid) == 0
    assert "resuming: 2 finished passes and the gradient statistics kept" in caplog.text
    assert [(job.split, job.lr) for job in rerun] == [("valid", 0), ("test", 0), ("test", one_lr)]
    assert not parts.exists()
    timings = ("seconds", "ms_seconds")
    one, two = read_json(whole), read_json(resumed)
    for result in (one, two):
        for key in timings:
            result.pop(key)
        for point in result["grid"]:
            point.pop("seconds")
    assert one == two and one["lr"] > 0 and "test_ppl_dynamic_cache" in one
    for name in ("test_logp_static", "test_logp_dynamic"):
        np.testing.assert_array_equal(np.load(whole.with_suffix(".npz"))[name],
                                      np.load(resumed.with_suffix(".npz"))[name])
    # another segment length: the kept parts are not this job's
    monkeypatch.setattr(passes, "run_pass", stopping)
    ran.clear()
    with pytest.raises(KeyboardInterrupt):
        dynamic_eval(run, paths, resumed, *grid)
    monkeypatch.setattr(passes, "run_pass", real)
    caplog.clear()
    assert dynamic_eval(run, paths, resumed, *grid, "--segment", "4") == 0
    assert "resuming" not in caplog.text and not parts.exists()
