"""Model stage: one Gluon language model for all four recurrent modes.

    ids (T, B) -> embedding (T, B, emsize) -> dropout -> recurrent layers (T, B, nhid)
               -> dropout -> dense decoder (T, B, vocab)

Each recurrent layer is its own one-layer fused block with dropout between them: MXNet 1.9.1's
fused multi-layer RNN on the CPU (oneDNN) silently skips its inter-layer dropout, so asking it for
``num_layers=2, dropout=0.5`` would train without dropout (tests/test_model.py shows both).
Hyperparameters live in a frozen ``ModelConfig`` saved as ``model.json`` beside ``model.params``.
"""

import dataclasses
import json
import math
from pathlib import Path

from rnnlm.io import RnnlmError, read_json, write_text
from rnnlm.mx import gluon, init

# mode -> (Gluon layer class name, keyword arguments); rnn.RNN defaults to ReLU, so say it.
LAYERS = {
    "rnn_relu": ("RNN", {"activation": "relu"}),
    "rnn_tanh": ("RNN", {"activation": "tanh"}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
}
MODES = tuple(LAYERS)
RNN_INITS = ("init_range", "pytorch")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    mode: str
    vocab_size: int
    emsize: int = 100
    nhid: int = 100
    nlayers: int = 2
    dropout: float = 0.2
    tied: bool = True
    init_range: float = 0.1  # weights start uniform in [-init_range, init_range], biases at 0
    # "pytorch": the recurrent layers' weights and biases start as PyTorch's nn.LSTM/GRU/RNN do,
    # uniform in +-1/sqrt(nhid); the embedding and decoder keep init_range
    rnn_init: str = "init_range"

    def __post_init__(self):
        if self.mode not in LAYERS:
            raise RnnlmError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        for name in ("vocab_size", "emsize", "nhid", "nlayers"):
            if getattr(self, name) < 1:
                raise RnnlmError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise RnnlmError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_range <= 0:
            raise RnnlmError(f"init_range must be positive, got {self.init_range}")
        if self.rnn_init not in RNN_INITS:
            raise RnnlmError(f"unknown rnn_init {self.rnn_init!r}; choose one of "
                             f"{', '.join(RNN_INITS)}")
        if self.tied and self.emsize != self.nhid:
            raise RnnlmError(f"tied weights need emsize == nhid (got emsize {self.emsize}, "
                             f"nhid {self.nhid}); make them equal or use --no-tied")


class RecurrentStack(gluon.HybridBlock):
    """``nlayers`` one-layer fused RNNs with dropout between them (see the module docstring).

    The state is one flat list: per layer ``[h]``, or ``[h, c]`` for an LSTM, each (1, B, nhid).
    """

    def __init__(self, mode, nlayers, input_size, nhid, dropout, **kwargs):
        super().__init__(**kwargs)
        cls, options = LAYERS[mode]
        self.nlayers = nlayers
        self.states_per_layer = 2 if mode == "lstm" else 1
        with self.name_scope():
            self.drop = gluon.nn.Dropout(dropout)
            for i in range(nlayers):
                layer = getattr(gluon.rnn, cls)(nhid, input_size=input_size if i == 0 else nhid,
                                                **options)
                setattr(self, f"layer{i}", layer)

    def layers(self):
        return [getattr(self, f"layer{i}") for i in range(self.nlayers)]

    def begin_state(self, batch_size, ctx):
        return [s for layer in self.layers() for s in layer.begin_state(batch_size, ctx=ctx)]

    def hybrid_forward(self, F, x, states):
        n, new_states = self.states_per_layer, []
        for i, layer in enumerate(self.layers()):
            if i:
                x = self.drop(x)
            x, layer_states = layer(x, states[i * n:(i + 1) * n])
            new_states.extend(layer_states)
        return x, new_states


class RNNModel(gluon.HybridBlock):
    """The language model: ``model(ids (T, B), state) -> (logits (T, B, vocab), new state)``."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        c = config
        with self.name_scope():
            self.embedding = gluon.nn.Embedding(c.vocab_size, c.emsize)
            self.drop = gluon.nn.Dropout(c.dropout)
            self.rnn = RecurrentStack(c.mode, c.nlayers, c.emsize, c.nhid, c.dropout)
            # Tied: built on the embedding's parameter dict, so "weight" is the embedding matrix.
            shared = self.embedding.params if c.tied else None
            self.decoder = gluon.nn.Dense(c.vocab_size, in_units=c.nhid, flatten=False,
                                          params=shared)

    def begin_state(self, batch_size, ctx):
        return self.rnn.begin_state(batch_size, ctx)

    def hybrid_forward(self, F, inputs, states):
        emb = self.drop(self.embedding(inputs))  # (T, B, emsize)
        out, states = self.rnn(emb, states)  # (T, B, nhid)
        return self.decoder(self.drop(out)), states  # (T, B, vocab)

    def initialize_weights(self, ctx):
        self.initialize(init.Uniform(self.config.init_range), ctx=ctx)
        if self.config.rnn_init == "pytorch":  # an explicit init overrides the biases' zeros too
            bound = 1 / math.sqrt(self.config.nhid)
            for param in self.rnn.collect_params().values():
                param.initialize(init.Uniform(bound), ctx=ctx, force_reinit=True)

    def param_count(self):
        """Trainable numbers; a tied matrix counts once."""
        return sum(p.data(p.list_ctx()[0]).size for p in self.collect_params().values())


def save_model_config(config, path):
    write_text(path, json.dumps(dataclasses.asdict(config), indent=2) + "\n")


def read_model_config(path):
    fields = read_json(path)
    try:
        return ModelConfig(**fields)
    except TypeError as err:
        raise RnnlmError(f"{path}: not a model config ({err}); rerun the train stage") from None


def load_model(run_dir, ctx):
    """The trained model of a run folder (``model.json`` + ``model.params``), ready to predict."""
    run_dir = Path(run_dir)
    model = RNNModel(read_model_config(run_dir / "model.json"))
    params = run_dir / "model.params"
    if not params.is_file():
        raise RnnlmError(f"{params}: file not found; run the train stage first")
    model.load_parameters(str(params), ctx=ctx)
    model.hybridize(static_alloc=True, static_shape=True)
    return model
