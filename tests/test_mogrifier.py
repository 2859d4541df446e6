"""The Mogrifier LSTM (rnnlm.cells.mogrifier): the LSTM at 0 rounds, each round its formula, the
rank-k factors their product, and gradients that finite differences confirm."""

import numpy as np
import pytest

from rnnlm.awd.dropout import drop_connect
from rnnlm.cells.mogrifier import MogrifierLayer
from rnnlm.io import RnnlmError
from rnnlm.model import ModelConfig, RNNModel
from rnnlm.mx import autograd, nd
from rnnlm.mx import mxnet as mx

CPU = mx.cpu()


def build(mode, **overrides):
    fields = dict(vocab_size=12, emsize=6, nhid=8, nlayers=2, dropout=0.0, init_range=0.5)
    mx.random.seed(0)
    model = RNNModel(ModelConfig(mode, **{**fields, **overrides}))
    model.initialize_weights(CPU)
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def reference(layer, x, h, c):
    """The layer's steps in numpy from the paper's formulas (lamb's order: x first)."""
    p = {name: v.asnumpy().astype(np.float64) for name, v in layer.pieces().items()}
    mog = {name.split("_", 1)[1]: v.data().asnumpy().astype(np.float64)
           for name, v in layer.params.items() if "_mog" in name}

    def matrix(j):
        return mog[f"mog{j}_right"] @ mog[f"mog{j}_left"] if layer.rank else mog[f"mog{j}_weight"]

    outs = []
    for x_t in x:
        for j in range(layer.rounds):
            gate = 2 * sigmoid((h if j % 2 == 0 else x_t) @ matrix(j).T + mog[f"mog{j}_bias"])
            if j % 2 == 0:
                x_t = gate * x_t
            else:
                h = gate * h
        z = x_t @ p["i2h_weight"].T + p["i2h_bias"] + h @ p["h2h_weight"].T + p["h2h_bias"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs), h, c


@pytest.mark.parametrize("rank", [0, 3])
def test_weight_drop_is_one_mask_on_the_recurrent_matrix_for_the_whole_window(rank):
    """AWD's weight drop on the mogrifier: every step of a window reads one dropped copy of the
    LSTM's hidden-to-hidden matrix (all four gate blocks), the input matrix, the biases and the
    rounds' matrices as they are; the reference gets that copy as its weights."""
    mx.random.seed(0)
    layer = MogrifierLayer(6, 5, rounds=3, rank=rank, weight_dropout=0.5)
    layer.initialize(mx.init.Uniform(0.5))
    x, (h0, c0) = nd.random.uniform(shape=(9, 2, 6)), layer.begin_state(2, CPU)
    weight = layer.weight.data().copy()
    mx.random.seed(3)
    with autograd.record(train_mode=True):
        dropped = drop_connect(nd, weight, layer.span("h2h_weight"), 0.5, layer.size)
    mx.random.seed(3)
    with autograd.record(train_mode=True):
        out, _ = layer(x, [h0, c0])
    h2h = layer.pieces(dropped)["h2h_weight"].asnumpy() / layer.pieces()["h2h_weight"].asnumpy()
    assert h2h.shape[0] == 4 * 5 and set(np.unique(np.round(h2h, 5))) == {0.0, 2.0}
    layer.weight.set_data(dropped)  # the reference reads the layer's pieces
    by_hand, _, _ = reference(layer, x.asnumpy(), h0[0].asnumpy(), c0[0].asnumpy())
    np.testing.assert_allclose(out.asnumpy(), by_hand, rtol=1e-5, atol=1e-6)
    layer.weight.set_data(weight)
    undropped, _, _ = reference(layer, x.asnumpy(), h0[0].asnumpy(), c0[0].asnumpy())
    assert np.abs(out.asnumpy() - undropped).max() > 1e-3  # the mask acts


@pytest.mark.parametrize("hybridize", [False, True])
def test_zero_rounds_compute_what_lstm_computes_window_by_window(tmp_path, hybridize):
    """The same weights (lstm's file loaded into mogrifier r = 0), three windows carrying the
    state: the same logits and states, to float32's rounding (a step loop sums otherwise than
    the fused operator)."""
    lstm, mog = build("lstm"), build("mogrifier", mogrifier_rounds=0)
    lstm.save_parameters(tmp_path / "lstm.params")
    mog.load_parameters(tmp_path / "lstm.params", CPU)
    if hybridize:
        for model in (lstm, mog):
            model.hybridize(static_alloc=True, static_shape=model.static_shape)
    states = [model.begin_state(3, CPU) for model in (lstm, mog)]
    rng = np.random.default_rng(1)
    for _ in range(3):
        ids = nd.array(rng.integers(0, 12, size=(5, 3)))
        (a, sa), (b, sb) = (model(ids, s) for model, s in zip((lstm, mog), states, strict=True))
        np.testing.assert_allclose(b.asnumpy(), a.asnumpy(), rtol=1e-5, atol=1e-6)
        for x, y in zip(sa, sb, strict=True):
            np.testing.assert_allclose(y.asnumpy(), x.asnumpy(), rtol=1e-5, atol=1e-6)
        states = [sa, sb]


@pytest.mark.parametrize("rounds,rank", [(1, 0), (2, 0), (5, 0), (4, 2)])
def test_each_round_gates_by_its_formula(rounds, rank):
    layer = MogrifierLayer(5, 4, rounds, rank)
    mx.random.seed(3)
    layer.initialize(mx.init.Uniform(0.8))
    for name, param in layer.params.items():  # nonzero biases, so a missed one shows
        if name.endswith("_bias"):
            param.set_data(nd.random.uniform(-0.5, 0.5, shape=param.shape))
    rng = np.random.default_rng(2)
    x, h, c = rng.normal(size=(3, 2, 5)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    out, (h1, c1) = layer(nd.array(x), [nd.array(h[None]), nd.array(c[None])])
    want, want_h, want_c = reference(layer, x, h, c)
    np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h1.asnumpy()[0], want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c1.asnumpy()[0], want_c, rtol=1e-5, atol=1e-6)


def test_rounds_change_the_output_and_rank_k_is_its_factors_product():
    """A full layer given the product right @ left of a rank-2 layer's factors computes what
    that layer computes; both differ from the plain LSTM of the same vector."""
    low, full, plain = MogrifierLayer(5, 4, 3, rank=2), MogrifierLayer(5, 4, 3), \
        MogrifierLayer(5, 4, 0)
    mx.random.seed(4)
    low.initialize(mx.init.Uniform(0.8))
    full.initialize(mx.init.Uniform(0.8))
    plain.initialize()
    full.weight.set_data(low.weight.data())
    plain.weight.set_data(low.weight.data())
    assert low.mog0_left.shape == (2, 4) and low.mog0_right.shape == (5, 2)  # x gated by h
    assert low.mog1_left.shape == (2, 5) and low.mog1_right.shape == (4, 2)  # h gated by x
    for j in range(3):
        product = nd.dot(getattr(low, f"mog{j}_right").data(), getattr(low, f"mog{j}_left").data())
        getattr(full, f"mog{j}_weight").set_data(product)
        getattr(full, f"mog{j}_bias").set_data(getattr(low, f"mog{j}_bias").data())
    x = nd.random.normal(shape=(4, 2, 5))
    states = [nd.random.normal(shape=(1, 2, 4)) for _ in range(2)]
    outs = [layer(x, states)[0].asnumpy() for layer in (low, full, plain)]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    assert np.abs(outs[0] - outs[2]).max() > 1e-3


def test_low_rank_factors_start_with_a_full_matrixs_variance():
    """lamb's initialiser: the product's entries have variance 1 / fan_in."""
    layer = MogrifierLayer(200, 200, 2, rank=20)
    mx.random.seed(0)
    layer.initialize()
    product = nd.dot(layer.mog0_right.data(), layer.mog0_left.data()).asnumpy()
    assert product.var() == pytest.approx(1 / 200, rel=0.1)


def test_gradients_match_finite_differences_in_float64():
    layer = MogrifierLayer(3, 4, 3, rank=2)
    mx.random.seed(6)
    layer.initialize(mx.init.Uniform(0.8))
    layer.cast("float64")
    rng = np.random.default_rng(5)
    x = nd.array(rng.normal(size=(3, 2, 3)), dtype="float64")
    states = [nd.array(rng.normal(size=(1, 2, 4)), dtype="float64") for _ in range(2)]
    target = nd.array(rng.normal(size=(3, 2, 4)), dtype="float64")

    def loss():
        out, (h, c) = layer(x, states)
        return ((out - target) ** 2).sum() + (c * c).sum()

    params = layer.collect_params()
    with autograd.record():
        total = loss()
    total.backward()
    checked = 0
    for name, param in params.items():
        data, grad = param.data(), param.grad().asnumpy().reshape(-1)
        for k in map(int, rng.choice(data.size, size=min(4, data.size), replace=False)):
            flat = data.reshape(-1)
            saved, eps = flat[k].asscalar(), 1e-6
            flat[k] = saved + eps
            up = loss().asscalar()
            flat[k] = saved - eps
            down = loss().asscalar()
            flat[k] = saved
            assert grad[k] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), name
            checked += 1
    assert checked > 30


@pytest.mark.parametrize("overrides,problem", [
    ({"mogrifier_rounds": -1}, "mogrifier_rounds must be at least 0"),
    ({"mogrifier_rank": 7}, r"mogrifier_rank must be in \[0, 6\]"),
])
def test_bad_rounds_or_rank_are_refused(overrides, problem):
    with pytest.raises(RnnlmError, match=problem):
        ModelConfig("mogrifier", 12, emsize=6, nhid=8, **overrides)


def test_static_shape_is_what_breaks_foreach_so_the_mogrifier_asks_without_it():
    """The MXNet bug rnnlm.model.RNNModel.static_shape avoids: compiled with static_shape, a
    mogrifier's logits differ from its imperative ones; without, they agree."""
    ids = nd.array(np.random.default_rng(1).integers(0, 12, size=(5, 3)))
    found = {}
    for static_shape in (True, False):
        model = build("mogrifier", mogrifier_rounds=2)
        want = model(ids, model.begin_state(3, CPU))[0].asnumpy()
        model.hybridize(static_alloc=True, static_shape=static_shape)
        found[static_shape] = np.abs(model(ids, model.begin_state(3, CPU))[0].asnumpy()
                                     - want).max()
    assert found[False] < 1e-6 < found[True]
    assert not build("mogrifier").static_shape and build("lstm").static_shape
