"""The adaptive softmax: an exact distribution in every mode, tied or not; a fast training loss
equal to a plain formulation in value and gradients; the predicted probabilities it trains on;
save and load; and its settings' errors."""

import numpy as np
import pytest

from rnnlm.io import RnnlmError
from rnnlm.model import MODES, ModelConfig, RNNModel
from rnnlm.mx import autograd, nd
from rnnlm.mx import mxnet as mx
from rnnlm.predict import Prompt, next_word_probs
from rnnlm.softmax.clusters import capacities, projections
from rnnlm.step import loss_graph, tail_capacity, windows
from rnnlm.trained import load_model, read_model_config

CPU = mx.cpu()
VOCAB, CUTOFFS = 40, (8, 20, 31)


def build(mode="lstm", tied=False, dtype="float32", **overrides):
    fields = dict(vocab_size=VOCAB, emsize=16, nhid=16, nlayers=2, dropout=0.0, tied=tied,
                  init_range=0.5, softmax="adaptive", cutoffs=CUTOFFS, div_value=2.0)
    mx.random.seed(0)
    model = RNNModel(ModelConfig(mode, **{**fields, **overrides}))
    model.initialize_weights(CPU)
    model.cast(dtype)
    model.hybridize(static_alloc=True, static_shape=True)
    return model


def zipf_ids(steps, batch, seed=0):
    """Ids of a Zipf-like law over VOCAB, so that every cluster gets some rows, unevenly."""
    p = 1 / np.arange(1, VOCAB + 1)
    rng = np.random.default_rng(seed)
    return rng.choice(VOCAB, size=(steps, batch), p=p / p.sum()).astype(np.float32)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("mode", MODES)
def test_the_distribution_sums_to_one_in_every_mode(mode, tied):
    model = build(mode, tied)
    log_p, _ = model(nd.array(zipf_ids(6, 4)), model.begin_state(4, CPU))  # (T, B, V)
    assert log_p.shape == (6, 4, VOCAB)
    np.testing.assert_allclose(np.exp(log_p.asnumpy().astype(np.float64)).sum(-1), 1.0,
                               rtol=1e-5)


def plain_loss(model, x, y, state):
    """-sum log p(y) written out from the parameters: every word's probability as the head's
    times its cluster's, the (N, V) matrix built whole, then the targets' entries."""
    _, _, h = model.features(nd, x, state)
    h = h.reshape((-1, h.shape[-1]))  # (N, units)
    d, c = model.decoder, model.config
    edges = [*c.cutoffs, c.vocab_size]
    if c.tied:
        w, b = d.weight.data(), d.bias.data()
        head = nd.dot(h, nd.concat(w[:edges[0]], d.cluster_weight.data(), dim=0),
                      transpose_b=True) + nd.concat(b[:edges[0]], d.cluster_bias.data(), dim=0)
        tails = [nd.dot(h, w[s:e], transpose_b=True) + b[s:e]
                 for s, e in zip(edges[:-1], edges[1:], strict=True)]
    else:
        head = nd.dot(h, d.head_weight.data(), transpose_b=True)
        tails = [nd.dot(nd.dot(h, getattr(d, f"proj{i}_weight").data(), transpose_b=True),
                        getattr(d, f"out{i}_weight").data(), transpose_b=True)
                 for i in range(len(c.cutoffs))]
    head = nd.softmax(head, axis=-1)
    probs = nd.concat(head[:, :edges[0]], *[
        nd.softmax(t, axis=-1) * head[:, edges[0] + i:edges[0] + i + 1]
        for i, t in enumerate(tails)], dim=1)  # (N, V)
    return -nd.log(nd.pick(probs, y.reshape((-1,)), axis=1)).sum()


def loss_and_grads(model, loss_fn):
    with autograd.record():
        loss = loss_fn()
    loss.backward()
    return float(loss.asscalar()), {n: p.grad().asnumpy().copy()
                                    for n, p in model.collect_params().items()}


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("mode", MODES)
def test_the_fast_training_loss_and_gradients_are_the_plain_formulations(mode, tied):
    model = build(mode, tied, dtype="float64")  # float32's rounding would be all we compared
    data = zipf_ids(12, 5, seed=1)
    x, y = nd.array(data[:-1], dtype="float64"), nd.array(data[1:], dtype="float64")
    state = [s.astype("float64") for s in model.begin_state(5, CPU)]
    capacity = capacities([data], CUTOFFS, [(0, 11)])
    assert capacity != (55,) * 3 and min(capacity) >= 1  # each tail on some rows, not all
    fast = loss_graph(model, capacity=capacity)
    fast_loss, fast_grads = loss_and_grads(model, lambda: fast(x, y, state)[0])
    plain, plain_grads = loss_and_grads(model, lambda: plain_loss(model, x, y, state))
    np.testing.assert_allclose(fast_loss, plain, rtol=1e-5)
    for name, grad in plain_grads.items():
        scale = np.abs(grad).max()
        np.testing.assert_allclose(fast_grads[name], grad, rtol=1e-5, atol=1e-6 * scale,
                                   err_msg=name)
        assert scale > 0, name  # every parameter, every tail, took part
    roomy = loss_graph(model, capacity=(55, 55, 55))  # every row in every tail: padding masked
    assert float(roomy(x, y, state)[0].asscalar()) == pytest.approx(fast_loss, rel=1e-6)


def test_capacity_is_the_most_targets_a_tail_gets_in_one_window():
    data = zipf_ids(40, 3, seed=2)
    cut = windows(40, 7)
    got = capacities([data[:, :2], data[:, 2:]], CUTOFFS, cut, chunk=9)
    edges = [*CUTOFFS, VOCAB]
    for i in range(3):
        counts = [((data[s + 1:s + 1 + n, cols] >= edges[i]) &
                   (data[s + 1:s + 1 + n, cols] < edges[i + 1])).sum()
                  for s, n in cut for cols in (slice(0, 2), slice(2, 3))]
        assert got[i] == max(1, max(counts))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_the_training_loss_is_minus_the_log_of_what_predict_reports(tied):
    model = build("gru", tied)
    ids = [int(i) for i in zipf_ids(9, 1, seed=3)[:, 0]]
    x, y = nd.array([ids[:-1]]).T, nd.array([ids[1:]]).T  # (8, 1)
    capacity = tail_capacity(model.config, [nd.array([ids]).T], [(0, 8)])
    loss = float(loss_graph(model, capacity=capacity)(x, y, model.begin_state(1, CPU))[0]
                 .asscalar())
    prompts = [Prompt("", [], [], ids[:t]) for t in range(1, len(ids))]
    predicted = [next_word_probs(model, p, CPU)[ids[t]] for t, p in enumerate(prompts, 1)]
    assert loss == pytest.approx(-np.log(predicted).sum(), rel=1e-5)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_save_and_load_keep_the_adaptive_softmax(tmp_path, tied):
    from rnnlm.model import save_model_config

    model = build("lstm", tied)
    model.save_parameters(tmp_path / "model.params")
    save_model_config(model.config, tmp_path / "model.json")
    assert read_model_config(tmp_path / "model.json") == model.config
    loaded = load_model(tmp_path, CPU)
    x = nd.array(zipf_ids(5, 2, seed=4))
    expected, _ = model(x, model.begin_state(2, CPU))
    got, _ = loaded(x, loaded.begin_state(2, CPU))
    np.testing.assert_array_equal(got.asnumpy(), expected.asnumpy())
    assert loaded.param_count() == model.param_count()


def test_untied_has_pytorchs_parameters_tied_the_embedding_rows():
    untied, tied = build(tied=False), build(tied=True)
    units, head = 16, CUTOFFS[0] + len(CUTOFFS)
    sizes = projections(units, 2.0, len(CUTOFFS))
    assert sizes == [8, 4, 2]  # int(16 // 2.0 ** i), as AdaptiveLogSoftmaxWithLoss sizes them
    tails = sum(p * units + (e - s) * p for p, s, e in zip(
        sizes, CUTOFFS, [*CUTOFFS[1:], VOCAB], strict=True))
    rnn = sum(layer.size for layer in untied.rnn.layers())
    assert untied.param_count() == VOCAB * units + rnn + head * units + tails  # no biases
    assert tied.decoder.weight is tied.embedding.weight
    clusters = len(CUTOFFS) * (units + 1)  # a vector and a bias per cluster token
    assert tied.param_count() == VOCAB * units + rnn + VOCAB + clusters  # a bias per word


def test_the_full_softmax_records_what_it_did_before():
    config = ModelConfig("lstm", vocab_size=VOCAB)
    assert "softmax" not in config.fields() and "cutoffs" not in config.fields()
    adaptive = ModelConfig("lstm", vocab_size=VOCAB, softmax="adaptive", cutoffs=[8, 20])
    assert adaptive.fields()["cutoffs"] == (8, 20) and adaptive.fields()["div_value"] == 4.0


@pytest.mark.parametrize(("fields", "message"), [
    ({"cutoffs": (20, 8)}, "cutoffs [20, 8] are not increasing"),
    ({"cutoffs": (8, 8)}, "cutoffs [8, 8] are not increasing"),
    ({"cutoffs": (8, 40)}, "cutoffs [8, 40]: 40 is at or beyond the vocabulary size 40"),
    ({"cutoffs": (0, 8)}, "cutoffs [0, 8]: each must be an integer >= 1"),
    ({"cutoffs": ()}, "softmax adaptive needs cutoffs"),
    ({"div_value": 0.5}, "div_value 0.5 is below 1"),
    ({"div_value": 8.0, "tied": False}, "tail cluster 2's projection has 16 // 8**2 = 0 units"),
    ({"softmax": "full"}, "cutoffs [8, 20, 31] are the adaptive softmax's"),
    ({"softmax": "sampled"}, "softmax 'sampled' is unknown; choose one of full, adaptive"),
])
def test_bad_settings_are_one_line_naming_the_key(fields, message):
    base = dict(vocab_size=VOCAB, emsize=16, nhid=16, softmax="adaptive", cutoffs=CUTOFFS)
    with pytest.raises(RnnlmError) as err:
        ModelConfig("lstm", **{**base, **fields})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_cache_reads_the_full_distribution():
    from rnnlm.adapt.cache import model_pass

    model = build("lstm", tied=True)
    data = nd.array(zipf_ids(10, 1, seed=5))
    logp, hidden = model_pass(model, data, window=4)  # windows carry the state
    log_p, _ = model(data[:-1], model.begin_state(1, CPU))
    expected = np.take_along_axis(log_p.asnumpy(), data[1:].asnumpy().astype(int)[..., None], -1)
    np.testing.assert_allclose(logp, expected[..., 0], rtol=1e-5)
    assert hidden.shape == (9, 1, 16)
