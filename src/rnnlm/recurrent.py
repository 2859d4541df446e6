"""The recurrent layers of the model (rnnlm.model): ``nlayers`` one-layer fused blocks, each of
whose four arrays live in one flat parameter vector.

Each recurrent layer is its own one-layer fused block with dropout between them: MXNet 1.9.1's
fused multi-layer RNN on the CPU (oneDNN) silently skips its inter-layer dropout, so asking it for
``num_layers=2, dropout=0.5`` would train without dropout (tests/test_model.py shows both).
"""

import math

from rnnlm.awd.dropout import drop_connect, locked_dropout
from rnnlm.mx import gluon, init, nd

GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3, "mogrifier": 4}  # mogrifier: LSTM's
STATES = {"lstm": 2, "mogrifier": 2}  # (h, c); the others carry h only
PIECES = ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")  # the RNN operator's layout


class Pieces(init.Initializer):
    """Fills a flat layer vector piece by piece as Gluon fills gluon.rnn's four arrays, so a seed
    draws the same weights: each weight from ``weight`` (default: the model's initializer), each
    bias from ``bias``."""

    def __init__(self, layer, weight=None, bias="zeros"):
        super().__init__()
        self.layer, self.weight, self.bias = layer, weight, bias

    def _init_weight(self, desc, arr):
        for name, piece in self.layer.pieces(arr).items():
            fill = self.weight or desc.global_init if name.endswith("weight") else self.bias
            init.create(fill)._init_weight(desc, piece)


class RecurrentLayer(gluon.HybridBlock):
    """One fused one-layer RNN of ``mode`` whose four arrays live in one flat parameter vector.

    MXNet's RNN operator reads its weights as one vector: gluon.rnn's layers concatenate their four
    arrays on every call and split the gradient back, a copy at about 1 GB/s that took 8% of a
    training window. Here the vector is the parameter; ``pieces`` shows it as the four arrays.
    """

    def __init__(self, mode, input_size, nhid, weight_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        gates = GATES[mode] * nhid
        self.mode, self.nhid, self.states = mode, nhid, STATES.get(mode, 1)
        self.weight_dropout = weight_dropout
        self.shapes = dict(zip(PIECES, [(gates, input_size), (gates, nhid), (gates,), (gates,)],
                               strict=True))
        self.size = sum(math.prod(shape) for shape in self.shapes.values())
        self.weight = self.params.get("weight", shape=(self.size,), init=Pieces(self))

    def pieces(self, flat=None):
        """The four arrays (views) of ``flat``, by default the parameter's data."""
        flat = self.weight.data(self.weight.list_ctx()[0]) if flat is None else flat
        views, start = {}, 0
        for name, shape in self.shapes.items():
            views[name] = flat[start:start + math.prod(shape)].reshape(shape)
            start += math.prod(shape)
        return views

    def begin_state(self, batch_size, ctx):
        return [nd.zeros((1, batch_size, self.nhid), ctx=ctx) for _ in range(self.states)]

    def span(self, piece):
        """(start, end) of ``piece`` in the flat vector."""
        start = 0
        for name, shape in self.shapes.items():
            if name == piece:
                return start, start + math.prod(shape)
            start += math.prod(shape)
        raise KeyError(piece)

    def hybrid_forward(self, F, x, states, weight):
        if self.weight_dropout:  # still one fused RNN call: the mask multiplies its vector
            weight = drop_connect(F, weight, self.span("h2h_weight"), self.weight_dropout,
                                  self.size)
        out = F.RNN(x, weight, *states, state_size=self.nhid, num_layers=1, mode=self.mode,
                    state_outputs=True)
        return out[0], [out[i] for i in range(1, 1 + self.states)]


class RecurrentStack(gluon.HybridBlock):
    """``nlayers`` one-layer fused RNNs with dropout between them (see the module docstring).

    The state is one flat list: per layer ``[h]``, or ``[h, c]`` for an LSTM, each (1, B, nhid).
    """

    def __init__(self, mode, sizes, input_size, dropout, dropout_h=0.0, weight_dropout=0.0,
                 layer=None, **kwargs):
        """``layer(inputs, units, weight_dropout)`` builds a layer of a cell the fused operator
        cannot run (rnnlm.cells); by default a fused RecurrentLayer of ``mode``."""
        super().__init__(**kwargs)
        self.nlayers = len(sizes)
        self.states_per_layer = STATES.get(mode, 1)
        layer = layer or (lambda inputs, units, rate: RecurrentLayer(mode, inputs, units, rate))
        self.dropout_h = dropout_h
        with self.name_scope():
            self.drop = gluon.nn.Dropout(dropout)
            if dropout_h:
                self.drop_h = locked_dropout(dropout_h)
            for i, size in enumerate(sizes):
                setattr(self, f"layer{i}",
                        layer(sizes[i - 1] if i else input_size, size, weight_dropout))

    def layers(self):
        return [getattr(self, f"layer{i}") for i in range(self.nlayers)]

    def begin_state(self, batch_size, ctx):
        return [s for layer in self.layers() for s in layer.begin_state(batch_size, ctx)]

    def hybrid_forward(self, F, x, states):
        n, new_states = self.states_per_layer, []
        for i, layer in enumerate(self.layers()):
            if i:
                x = self.drop(x)
                if self.dropout_h:
                    x = self.drop_h(x)
            x, layer_states = layer(x, states[i * n:(i + 1) * n])
            new_states.extend(layer_states)
        return x, new_states
