"""The model: four real modes, dropout that really happens between layers, tied weights."""

import numpy as np
import pytest

from rnnlm.cli import training
from rnnlm.io import RnnlmError
from rnnlm.model import FUSED, LAYERS, MODES, ModelConfig, RNNModel, save_model_config
from rnnlm.mx import autograd, gluon, nd
from rnnlm.mx import mxnet as mx
from rnnlm.recurrent import PIECES, RecurrentLayer, RecurrentStack
from rnnlm.trained import load_model

CPU = mx.cpu()


def build(mode="lstm", **overrides):
    fields = dict(vocab_size=12, emsize=8, nhid=8, nlayers=2, dropout=0.0, tied=True,
                  init_range=0.5)
    mx.random.seed(0)
    model = RNNModel(ModelConfig(mode, **{**fields, **overrides}))
    model.initialize_weights(CPU)
    return model


def ids(steps=5, batch=3, vocab=12, seed=0):
    return nd.array(np.random.default_rng(seed).integers(0, vocab, size=(steps, batch)))


def test_unknown_mode_is_an_error_listing_the_five():
    with pytest.raises(RnnlmError, match="rnn_relu, rnn_tanh, lstm, gru, mogrifier"):
        ModelConfig("transformer", vocab_size=10)


def test_cli_offers_exactly_the_model_modes():
    assert training.MODES == MODES == ("rnn_relu", "rnn_tanh", "lstm", "gru", "mogrifier")


def test_tied_with_unequal_sizes_takes_awds_layout_the_last_layer_of_emsize():
    tied = build(emsize=8, nhid=16, nlayers=3, tied=True)
    assert [layer.nhid for layer in tied.rnn.layers()] == [16, 16, 8]
    assert [layer.shapes["i2h_weight"][1] for layer in tied.rnn.layers()] == [8, 16, 16]
    assert tied.decoder.weight is tied.embedding.weight
    logits, _ = tied(ids(), tied.begin_state(3, CPU))
    assert logits.shape == (5, 3, 12)
    untied = build(emsize=8, nhid=16, nlayers=3, tied=False)
    assert [layer.nhid for layer in untied.rnn.layers()] == [16, 16, 16]


@pytest.mark.parametrize("mode", MODES)
def test_forward_shapes_and_state(mode):
    model = build(mode)
    model.hybridize(static_alloc=True, static_shape=model.static_shape)
    state = model.begin_state(3, CPU)
    assert len(state) == 2 * (2 if mode in ("lstm", "mogrifier") else 1)
    logits, new_state = model(ids(), state)
    assert logits.shape == (5, 3, 12)
    assert [s.shape for s in new_state] == [(1, 3, 8)] * len(state)


def test_tied_weights_share_one_array_untied_do_not():
    tied, untied = build(tied=True), build(tied=False)
    assert tied.decoder.weight is tied.embedding.weight
    assert untied.decoder.weight is not untied.embedding.weight
    assert untied.param_count() - tied.param_count() == 12 * 8
    # one array: a change through the embedding shows in the decoder
    tied.embedding.weight.data()[:] = 7.0
    assert np.all(tied.decoder.weight.data().asnumpy() == 7.0)


def test_weights_start_within_init_range_biases_at_zero():
    model = build(init_range=0.05, tied=False)
    for name, array in model.arrays().items():
        values = np.abs(array.asnumpy())
        if name.endswith("bias"):
            assert values.max() == 0, name
        else:
            assert 0 < values.max() <= 0.05, name


@pytest.mark.parametrize("mode", MODES)
def test_pytorch_rnn_init_draws_recurrent_weights_and_biases_within_one_over_sqrt_nhid(mode):
    """PyTorch's nn.LSTM/GRU/RNN default: every recurrent weight and bias uniform in
    +-1/sqrt(nhid); the embedding (and decoder) keep init_range, the decoder bias 0."""
    model = build(mode, nhid=25, emsize=25, init_range=0.01, rnn_init="pytorch")
    for name, array in model.arrays().items():
        values = np.abs(array.asnumpy())
        if name.startswith("rnn.") and ".mog" not in name:  # 1/sqrt(25) = 0.2: far above
            # init_range, biases too; the Mogrifier's rounds keep the model's (lamb's) init
            assert 0.1 < values.max() <= 0.2, name
        elif name.endswith("bias"):
            assert values.max() == 0, name
        else:
            assert 0 < values.max() <= 0.01, name
    with pytest.raises(RnnlmError, match="unknown rnn_init 'torch'; choose one of init_range"):
        build(mode, rnn_init="torch")


def _one_step(mode):
    """One step of a one-layer ``mode`` model's recurrent layer, and the same by hand."""
    layer = build(mode, nlayers=1).rnn.layer0
    p = {k: v.asnumpy() for k, v in layer.pieces().items()}
    x = np.random.default_rng(1).normal(size=(1, 2, 8)).astype(np.float32)
    h0 = np.random.default_rng(2).normal(size=(1, 2, 8)).astype(np.float32)
    out, _ = layer(nd.array(x), [nd.array(h0)])
    pre = x[0] @ p["i2h_weight"].T + p["i2h_bias"] + h0[0] @ p["h2h_weight"].T + p["h2h_bias"]
    return out.asnumpy()[0], pre


def test_rnn_tanh_really_uses_tanh():
    out, pre = _one_step("rnn_tanh")
    np.testing.assert_allclose(out, np.tanh(pre), rtol=1e-5, atol=1e-6)
    assert (pre < 0).any() and (out < 0).any()  # a ReLU could not give these


def test_rnn_relu_really_uses_relu():
    out, pre = _one_step("rnn_relu")
    np.testing.assert_allclose(out, np.maximum(pre, 0), rtol=1e-5, atol=1e-6)


def _train_minus_predict(block, *inputs):
    with autograd.record():  # training mode, as in the training loop
        train_out = block(*inputs)
    predict_out = block(*inputs)
    first = lambda out: out[0] if isinstance(out, tuple | list) else out  # noqa: E731
    return float(nd.abs(first(train_out) - first(predict_out)).max().asscalar())


@pytest.mark.parametrize("mode", FUSED)
@pytest.mark.parametrize("hybridize", [False, True])
def test_dropout_between_recurrent_layers_really_happens(mode, hybridize):
    """Only the dropout between layers acts here: the stack has none before or after."""
    x = nd.random.uniform(shape=(5, 4, 16))

    def stack(nlayers):
        block = RecurrentStack(mode, [16] * nlayers, 16, dropout=0.5)
        block.initialize(mx.init.Uniform(0.5))
        if hybridize:
            block.hybridize(static_alloc=True, static_shape=True)
        return block, block.begin_state(4, CPU)

    two, state2 = stack(2)
    assert _train_minus_predict(two, x, state2) > 1e-2  # lost dropout would give ~1e-8
    one, state1 = stack(1)
    assert _train_minus_predict(one, x, state1) < 1e-6  # one layer: nothing in between


def test_mxnet_fused_multilayer_rnn_skips_its_dropout_on_cpu():
    """Why RecurrentStack exists: MXNet 1.9.1's oneDNN fused LSTM ignores ``dropout``.

    If this fails, MXNet honours it now and the one-layer stack could go back to one block.
    """
    fused = gluon.rnn.LSTM(16, num_layers=2, dropout=0.5, input_size=16)
    fused.initialize(mx.init.Uniform(0.5))
    assert _train_minus_predict(fused, nd.random.uniform(shape=(5, 4, 16))) < 1e-6


def test_whole_model_dropout_is_off_when_predicting():
    model = build(dropout=0.5)
    a, _ = model(ids(), model.begin_state(3, CPU))
    b, _ = model(ids(), model.begin_state(3, CPU))
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert _train_minus_predict(model, ids(), model.begin_state(3, CPU)) > 1e-3


def test_load_model_restores_config_and_weights(tmp_path):
    model = build("gru", tied=False, emsize=6)
    model.save_parameters(str(tmp_path / "model.params"))
    save_model_config(model.config, tmp_path / "model.json")
    clone = load_model(tmp_path, CPU)
    assert clone.config == model.config
    a, _ = model(ids(), model.begin_state(3, CPU))
    b, _ = clone(ids(), clone.begin_state(3, CPU))
    np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)


def test_load_model_without_params_names_the_fix(tmp_path):
    save_model_config(build().config, tmp_path / "model.json")
    with pytest.raises(RnnlmError, match="model.params: file not found; run the train stage"):
        load_model(tmp_path, CPU)


@pytest.mark.parametrize("mode", FUSED)
def test_a_flat_layer_draws_and_computes_what_a_gluon_rnn_layer_does(mode):
    """The same seed gives the four arrays gluon.rnn's layer draws, and from them the same
    outputs, states and gradients: only the memory layout differs (no concat per call)."""
    cls, options = LAYERS[mode]
    gluon_layer = getattr(gluon.rnn, cls)(8, input_size=6, **options)
    ours = RecurrentLayer(mode, 6, 8)
    for layer in (gluon_layer, ours):
        mx.random.seed(5)
        layer.initialize(mx.init.Uniform(0.5))
    theirs = {k.split("_l0_")[-1]: v for k, v in gluon_layer.collect_params().items()}
    for name, piece in ours.pieces().items():
        np.testing.assert_array_equal(piece.asnumpy(), theirs[name].data().asnumpy())
    x = nd.random.uniform(shape=(4, 3, 6))
    outputs = []
    for layer in (gluon_layer, ours):
        states = layer.begin_state(3, ctx=CPU) if layer is gluon_layer else layer.begin_state(3,
                                                                                         CPU)
        with autograd.record():
            out, states = layer(x, states)
            total = out.sum() + sum(s.sum() for s in states)
        total.backward()
        outputs.append([out.asnumpy(), *(s.asnumpy() for s in states)])
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    grads = ours.pieces(ours.weight.grad())
    for name, grad in grads.items():
        np.testing.assert_allclose(grad.asnumpy(), theirs[name].grad().asnumpy(), rtol=1e-5,
                                   atol=1e-6)


def test_model_params_hold_gluon_rnn_names_and_a_wrong_file_is_refused(tmp_path):
    model = build("lstm", nlayers=1, tied=False)
    model.save_parameters(str(tmp_path / "model.params"))
    saved = nd.load(str(tmp_path / "model.params"))
    assert set(saved) == {"embedding.weight", "decoder.weight", "decoder.bias",
                          *(f"rnn.layer0._unfused.0.{p}" for p in PIECES)}
    assert saved["rnn.layer0._unfused.0.h2h_weight"].shape == (32, 8)
    gru = build("gru", nlayers=1, tied=False)
    gru.save_parameters(str(tmp_path / "gru.params"))
    with pytest.raises(RnnlmError, match=r"gru.params: array rnn.layer0._unfused.0.i2h_weight "
                                         r"should be \(32, 8\), found \(24, 8\): not this model"):
        model.load_parameters(str(tmp_path / "gru.params"), ctx=CPU)
