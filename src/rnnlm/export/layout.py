"""A trained model as plain arrays: embedding, recurrent layers, decoder.

Each layer's sizes are read from its arrays' shapes (``RecurrentLayer.shapes``' names, as
``RNNModel.arrays()`` gives them), not from ``ModelConfig``: a layout whose layers differ in size
(the AWD one, a tied model's last layer of size emsize) is described as it is, and a writer that
cannot express it says so. An array no part of this layout knows is refused, never dropped.
"""

import dataclasses
import re

import numpy as np

from rnnlm.io import RnnlmError

GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}  # as rnnlm.recurrent's (no mxnet here)
PIECES = ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")
LAYER = re.compile(r"rnn\.layer(\d+)\._unfused\.0\.(\w+)$")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One recurrent layer in MXNet's gate order (LSTM i,f,g,o; GRU r,z,n)."""

    i2h_weight: np.ndarray  # (gates * hidden, input)
    h2h_weight: np.ndarray  # (gates * hidden, hidden)
    i2h_bias: np.ndarray  # (gates * hidden,)
    h2h_bias: np.ndarray  # (gates * hidden,)

    @property
    def hidden(self):
        return self.h2h_weight.shape[1]

    @property
    def input(self):
        return self.i2h_weight.shape[1]


@dataclasses.dataclass(frozen=True)
class Layout:
    mode: str
    embedding: np.ndarray  # (vocab, emsize)
    layers: list  # of Layer, input first
    decoder_weight: np.ndarray  # (vocab, last hidden); the embedding itself when tied
    decoder_bias: np.ndarray  # (vocab,)
    tied: bool

    @property
    def vocab_size(self):
        return self.embedding.shape[0]

    @property
    def states_per_layer(self):
        return 2 if self.mode == "lstm" else 1

    def state_sizes(self):
        """The hidden size of each state array, in the model's flat order ([h] or [h, c])."""
        return [layer.hidden for layer in self.layers for _ in range(self.states_per_layer)]


def layout(mode, arrays, tied):
    """The Layout of ``arrays`` ({name in model.params: numpy array}) of a model of ``mode``."""
    arrays = {name: np.asarray(a, dtype=np.float32) for name, a in arrays.items()}
    pieces, other = {}, {}
    for name, array in arrays.items():
        match = LAYER.match(name)
        if match and match[2] in PIECES:
            pieces.setdefault(int(match[1]), {})[match[2]] = array
        else:
            other[name] = array
    known = {"embedding.weight", "decoder.bias"} | ({"decoder.weight"} if not tied else set())
    odd = sorted(set(other) - known) + sorted(known - set(other)) + [
        f"rnn.layer{i}" for i, found in sorted(pieces.items()) if set(found) != set(PIECES)]
    if odd or sorted(pieces) != list(range(len(pieces))) or not pieces:
        raise RnnlmError(f"cannot export arrays {', '.join(odd) or 'of the recurrent layers'}: "
                         "not the layout rnnlm.export knows (embedding, recurrent layers, dense "
                         "decoder); export needs support for it first")
    layers = [Layer(**pieces[i]) for i in range(len(pieces))]
    for i, layer in enumerate(layers):
        shapes = [getattr(layer, piece).shape for piece in PIECES]
        if {shape[0] for shape in shapes} != {GATES[mode] * layer.hidden}:
            raise RnnlmError(f"layer {i} of this {mode} model has arrays of {shapes}, not "
                             f"{GATES[mode]} gates of {layer.hidden}; not a model rnnlm trained")
    embedding = other["embedding.weight"]
    decoder = embedding if tied else other["decoder.weight"]
    return Layout(mode, embedding, layers, decoder, other["decoder.bias"], tied)


def reorder_gates(array, order, hidden):
    """``array`` (gates * hidden, ...) with its gate blocks taken in ``order``."""
    return np.concatenate([array[g * hidden:(g + 1) * hidden] for g in order])
