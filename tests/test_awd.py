"""AWD-LSTM's toolbox against its definitions on small arrays: masks per window, whole words,
the penalties' formulas, the decay's update, the windows' law, the average; identities when
predicting; off, nothing changes."""

import numpy as np
import pytest

from rnnlm.awd.asgd import Average, should_average
from rnnlm.awd.dropout import EmbeddingDropout, drop_connect, locked_dropout
from rnnlm.awd.penalties import activation_penalty
from rnnlm.awd.windows import variable_windows
from rnnlm.io import RnnlmError
from rnnlm.model import FUSED, MODES, ModelConfig, RNNModel
from rnnlm.mx import autograd, gluon, nd
from rnnlm.mx import mxnet as mx
from rnnlm.recurrent import RecurrentLayer
from rnnlm.step import clipped_sgd, loss_graph, window_loss, windows
from rnnlm.train import TrainConfig

CPU = mx.cpu()
EVERY = dict(dropout_e=0.3, dropout_i=0.4, dropout_h=0.25, dropout_o=0.4, weight_dropout=0.5)


def build(mode="lstm", seed=0, **overrides):
    fields = dict(vocab_size=12, emsize=8, nhid=8, nlayers=2, dropout=0.0, tied=True,
                  init_range=0.5)
    mx.random.seed(seed)
    model = RNNModel(ModelConfig(mode, **{**fields, **overrides}))
    model.initialize_weights(CPU)
    return model


def ids(steps=6, batch=3, vocab=12, seed=0):
    return nd.array(np.random.default_rng(seed).integers(0, vocab, size=(steps, batch)))


def training(block, *args):
    with autograd.record(train_mode=True):
        return block(*args)


@pytest.mark.parametrize("hybridize", [False, True])
def test_locked_dropout_keeps_one_mask_over_a_windows_steps(hybridize):
    drop = locked_dropout(0.5)
    if hybridize:
        drop.hybridize(static_alloc=True, static_shape=True)
    out = training(drop, nd.ones((7, 4, 16))).asnumpy()
    assert set(np.unique(out)) == {0.0, 2.0}  # dropped, or scaled by 1 / (1 - p)
    assert (out == out[:1]).all()  # every time step has the first one's mask
    assert 0.3 < (out[0] == 0).mean() < 0.7
    again = training(drop, nd.ones((7, 4, 16))).asnumpy()
    assert (again[0] != out[0]).any()  # a new mask for the next window
    np.testing.assert_array_equal(drop(nd.ones((7, 4, 16))).asnumpy(), 1.0)  # predicting


def test_embedding_dropout_drops_whole_words_in_every_position():
    words = ids(steps=20, batch=5, vocab=12)
    drop = EmbeddingDropout(0.5, 12)
    factors = training(drop, words).asnumpy()[..., 0]
    assert set(np.unique(factors)) <= {0.0, 2.0}
    for word in np.unique(words.asnumpy()):
        at = factors[words.asnumpy() == word]
        assert (at == at[0]).all(), word  # one word, one fate in the window
    assert len(np.unique(factors)) == 2
    np.testing.assert_array_equal(drop(words).asnumpy(), 1.0)


def test_a_dropped_words_embedding_row_is_zero_whole_and_the_rest_rescaled():
    model = build(dropout_e=0.5)
    words = ids(steps=20, batch=5)
    with autograd.record(train_mode=True):
        emb = model.embedding(words)
        dropped = nd.broadcast_mul(emb, model.drop_e(words))
    emb, dropped = emb.asnumpy(), dropped.asnumpy()
    zero = (dropped == 0).all(axis=-1)
    assert zero.any() and not zero.all()
    np.testing.assert_allclose(dropped[~zero], 2 * emb[~zero], rtol=1e-6)  # 1 / (1 - 0.5)


def test_drop_connect_masks_only_its_span():
    flat = nd.arange(1, 41, dtype="float32")
    with autograd.record(train_mode=True):
        out = drop_connect(nd, flat, (10, 30), 0.5, 40).asnumpy()
    np.testing.assert_array_equal(out[:10], np.arange(1, 11))
    np.testing.assert_array_equal(out[30:], np.arange(31, 41))
    middle = out[10:30] / np.arange(11, 31)
    assert set(np.unique(middle)) == {0.0, 2.0}


@pytest.mark.parametrize("mode", FUSED)
def test_weight_drop_is_one_mask_on_every_gate_block_of_the_recurrent_matrix(mode):
    """The layer with weight_dropout computes the fused RNN of one dropped copy of its vector:
    the hidden-to-hidden matrix (all gate blocks) masked, the rest as it is, for every step."""
    layer = RecurrentLayer(mode, 6, 5, weight_dropout=0.5)
    layer.initialize(mx.init.Uniform(0.5))
    x, state = nd.random.uniform(shape=(9, 2, 6)), layer.begin_state(2, CPU)
    weight = layer.weight.data()
    mx.random.seed(3)
    with autograd.record(train_mode=True):
        dropped = drop_connect(nd, weight, layer.span("h2h_weight"), 0.5, layer.size)
    mx.random.seed(3)
    out, _ = training(layer, x, state)
    by_hand = nd.RNN(x, dropped, *state, state_size=5, num_layers=1, mode=mode,
                     state_outputs=True)[0]
    np.testing.assert_allclose(out.asnumpy(), by_hand.asnumpy(), rtol=1e-5, atol=1e-6)
    pieces = layer.pieces(dropped)
    h2h = pieces["h2h_weight"].asnumpy() / layer.pieces()["h2h_weight"].asnumpy()
    assert h2h.shape[0] == {"lstm": 4, "gru": 3}.get(mode, 1) * 5
    assert set(np.unique(np.round(h2h, 5))) == {0.0, 2.0}
    for name in ("i2h_weight", "i2h_bias", "h2h_bias"):
        np.testing.assert_array_equal(pieces[name].asnumpy(), layer.pieces()[name].asnumpy())


@pytest.mark.parametrize("mode", FUSED)
def test_a_weight_dropped_model_stays_one_fused_rnn_call_per_layer(mode):
    model = build(mode, nlayers=3, **EVERY)
    model.hybridize(static_alloc=True, static_shape=True)
    training(model, ids(), model.begin_state(3, CPU))
    graph = model._cached_graph[1].tojson()
    assert graph.count('"op": "RNN"') == 3


@pytest.mark.parametrize("mode", MODES)
def test_every_regulariser_is_the_identity_when_predicting(mode):
    plain, regularised = build(mode, seed=1), build(mode, seed=1, **EVERY)
    for model in (plain, regularised):  # as the stages compile it (RNNModel.static_shape)
        model.hybridize(static_alloc=True, static_shape=model.static_shape)
    words = ids()
    a, _ = plain(words, plain.begin_state(3, CPU))
    b, _ = regularised(words, regularised.begin_state(3, CPU))
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    c, _ = training(regularised, words, regularised.begin_state(3, CPU))
    assert np.abs(c.asnumpy() - a.asnumpy()).max() > 1e-3  # and they act when training


def test_ar_and_tar_equal_their_formulas():
    rng = np.random.default_rng(0)
    raw, dropped = rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 3, 4))
    got = activation_penalty(nd, nd.array(raw), nd.array(dropped), 4, 2.0, 1.0)
    expected = 5 * 3 * (2.0 * (dropped ** 2).mean() + 1.0 * ((raw[1:] - raw[:-1]) ** 2).mean())
    assert got.asscalar() == pytest.approx(expected, rel=1e-5)
    assert activation_penalty(nd, nd.array(raw), nd.array(dropped), 4, 0.0, 0.0) == 0


def test_the_window_objective_adds_the_penalties_on_the_mean_loss_times_its_tokens():
    model = build(nlayers=2)
    words = ids(steps=7)
    plain, penalised = loss_graph(model), loss_graph(model, alpha=2.0, beta=1.0)
    (loss,), (objective,) = window_loss(plain, [words], [model.begin_state(3, CPU)], 0, 6)
    assert objective is loss
    (loss2,), (objective2,) = window_loss(penalised, [words], [model.begin_state(3, CPU)], 0, 6)
    _, _, raw, _ = model.outputs(nd, words[:6], model.begin_state(3, CPU))
    raw = raw.asnumpy()  # predicting: dropped == raw
    penalty = 2.0 * (raw ** 2).mean() + 1.0 * ((raw[1:] - raw[:-1]) ** 2).mean()
    assert loss2.asscalar() == pytest.approx(loss.asscalar(), rel=1e-6)
    assert (objective2 - loss2).asscalar() == pytest.approx(6 * 3 * penalty, rel=1e-4)


@pytest.mark.parametrize("host", [True, False])
def test_weight_decay_is_the_unclipped_sgd_decay(monkeypatch, host):
    """w -= lr * (min(1, max_norm / |g|) * g / batch + wd * w), on the host's path and the
    device's (the one GPUs take)."""
    if not host:
        monkeypatch.setattr("rnnlm.step.HOST_RATE_DEVICES", ())
    param = gluon.Parameter("w", shape=(3, 2))
    param.initialize(mx.init.Constant(1.0), ctx=CPU)
    w0 = param.data().asnumpy().copy()
    grad = np.array([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    param.grad()[:] = grad
    norm = nd.array([5.0])
    clipped_sgd([param], CPU, norm, 2.5, 0.1, 4, nd.zeros((1,)), wd=0.3)
    expected = w0 - 0.1 * (0.5 * grad / 4 + 0.3 * w0)
    np.testing.assert_allclose(param.data().asnumpy(), expected, rtol=1e-6)


def test_the_decay_per_window_is_wd_per_token():
    assert TrainConfig(wd=1e-6).decay(35) == pytest.approx(35e-6)
    assert TrainConfig().decay(35) == 0


def test_variable_windows_follow_awds_law_and_repeat_per_seed_and_epoch():
    cut = variable_windows(2_000_000, 70, seed=141, epoch=3)  # about 29,000 windows
    assert cut == variable_windows(2_000_000, 70, seed=141, epoch=3)
    assert cut != variable_windows(2_000_000, 70, seed=141, epoch=4)
    assert cut != variable_windows(2_000_000, 70, seed=142, epoch=3)
    starts = [s for s, _ in cut]
    assert starts[0] == 0
    assert all(a + n == b for (a, n), b in zip(cut[:-1], starts[1:], strict=True))
    assert cut[-1][0] + cut[-1][1] == 2_000_000 - 1  # targets run to the last row
    lengths = np.array([n for _, n in cut[:-1]])
    assert lengths.min() >= 5
    half = lengths < 52  # N(35, 5) against N(70, 5)
    assert half.mean() == pytest.approx(0.05, abs=0.005)
    assert lengths[~half].mean() == pytest.approx(69.5, abs=0.15)  # int() of N(70, 5)
    assert lengths[~half].std() == pytest.approx(5, abs=0.15)
    assert lengths[half].mean() == pytest.approx(34.5, abs=0.4)


def test_variable_windows_clip_each_window_at_its_own_length():
    config = TrainConfig(clip=0.25, bptt=70, variable_bptt=True)
    assert config.max_norm(20, 50) == pytest.approx(0.25 * 20 * 50)
    assert TrainConfig(clip=0.25, bptt=70).max_norm(20, 50) == pytest.approx(0.25 * 20 * 70)
    assert config.epoch_windows(1000, 2) == variable_windows(1000, 70, 1, 2)
    assert TrainConfig(bptt=70).epoch_windows(1000, 2) == windows(1000, 70)


def test_tar_never_meets_a_one_step_window():
    """awd-lstm-lm's loop ends where two steps are left; a fixed window of one step would have
    no step difference to penalise (and MXNet no empty slice to take)."""
    assert windows(12, 5)[-1] == (10, 1)
    assert TrainConfig(bptt=5, beta=1.0).epoch_windows(12, 1) == windows(12, 5)[:-1]
    assert TrainConfig(bptt=5).epoch_windows(12, 1) == windows(12, 5)  # as before without TAR
    assert min(n for _, n in variable_windows(10_000, 5, 1, 1)) >= 2
    with pytest.raises(RnnlmError, match="needs bptt >= 2"):
        TrainConfig(bptt=1, beta=1.0)


def test_nt_asgd_triggers_as_awd_main_does():
    history = [5.0, 4.0, 4.5, 4.4]
    assert not should_average(history, 4.1, nonmono=5)  # too few checks yet
    assert should_average(history, 4.1, nonmono=2)  # worse than min(5.0, 4.0)
    assert not should_average(history, 3.9, nonmono=2)


def test_the_average_is_the_mean_of_the_weights_after_each_step():
    param = gluon.Parameter("w", shape=(2,))
    param.initialize(mx.init.Constant(0.0), ctx=CPU)
    average, seen = Average([param], CPU), []
    for value in ([1.0, 2.0], [3.0, 6.0], [2.0, 1.0]):
        param.data()[:] = nd.array(value)
        average.update()
        seen.append(value)
    np.testing.assert_allclose(average.arrays[0].asnumpy(), np.mean(seen, axis=0), rtol=1e-6)
    with average.swapped_in([CPU]):
        np.testing.assert_allclose(param.data().asnumpy(), np.mean(seen, axis=0), rtol=1e-6)
    np.testing.assert_array_equal(param.data().asnumpy(), [2.0, 1.0])
