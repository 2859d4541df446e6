"""Model stage: one Gluon language model for all five recurrent modes.

    ids (T, B) -> embedding (T, B, emsize) -> dropouts -> recurrent layers (T, B, nhid)
               -> dropouts -> dense decoder (T, B, vocab)

The recurrent layers are one-layer fused blocks with dropout between them (rnnlm.recurrent), or
for ``mogrifier`` Mogrifier LSTM layers that step through the window (rnnlm.cells.mogrifier).
``dropout`` draws a mask per time step; AWD-LSTM's dropouts (rnnlm.awd) one per window: of
words (``dropout_e``), over time on the embedding (``dropout_i``), between layers
(``dropout_h``) and on the last layer's output (``dropout_o``), and of the recurrent weights
(``weight_dropout``). Each is built only when asked for, so a model without them computes, and
draws, what it did before they existed. Tied with ``nhid != emsize``, the last layer has emsize
units (AWD's layout), so the decoder can share the embedding. The decoder is a dense layer over the
vocabulary (``softmax: full``) or the adaptive softmax (rnnlm.softmax.adaptive), whose forward
pass gives log-probabilities: their softmax is themselves, so what reads logits reads them alike.
Hyperparameters live in a frozen ``ModelConfig`` saved as ``model.json`` beside ``model.params``,
which holds each layer's arrays under gluon.rnn's names, whatever the layout in memory.
"""

import dataclasses
import json
import math

from rnnlm.awd.dropout import EmbeddingDropout, locked_dropout
from rnnlm.cells.mogrifier import MogrifierLayer
from rnnlm.io import Damaged, RnnlmError, write_text
from rnnlm.mx import gluon, init, nd
from rnnlm.mx import mxnet as mx
from rnnlm.recurrent import Pieces, RecurrentStack
from rnnlm.softmax import clusters
from rnnlm.softmax.adaptive import AdaptiveSoftmax

# mode -> (Gluon layer class name, keyword arguments); rnn.RNN defaults to ReLU, so say it.
LAYERS = {
    "rnn_relu": ("RNN", {"activation": "relu"}),
    "rnn_tanh": ("RNN", {"activation": "tanh"}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
}
FUSED = tuple(LAYERS)  # also the names of MXNet's RNN operator modes
MODES = (*FUSED, "mogrifier")  # rnnlm.plan.runs.MODES
RNN_INITS = ("init_range", "pytorch")
DROPOUTS = ("dropout", "dropout_e", "dropout_i", "dropout_h", "dropout_o", "weight_dropout")
SOFTMAX_FIELDS = ("softmax", "cutoffs", "div_value")  # recorded only when not the full softmax
MOGRIFIER_FIELDS = ("mogrifier_rounds", "mogrifier_rank")  # recorded only for mode mogrifier


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    mode: str
    vocab_size: int
    emsize: int = 100
    nhid: int = 100
    nlayers: int = 2
    dropout: float = 0.2  # a mask per step: on the embedding, between layers, on the output
    dropout_e: float = 0.0  # whole words of the embedding, a mask per window
    dropout_i: float = 0.0  # on the embedding's output, a mask per window over time
    dropout_h: float = 0.0  # between layers, likewise
    dropout_o: float = 0.0  # on the last layer's output, likewise
    weight_dropout: float = 0.0  # DropConnect on the hidden-to-hidden weights, a mask per window
    tied: bool = True
    init_range: float = 0.1  # weights start uniform in [-init_range, init_range], biases at 0
    # "pytorch": the recurrent layers' weights and biases start as PyTorch's nn.LSTM/GRU/RNN do,
    # uniform in +-1/sqrt(nhid); the embedding and decoder keep init_range
    rnn_init: str = "init_range"
    softmax: str = "full"  # or "adaptive" (rnnlm.softmax.adaptive)
    cutoffs: tuple = ()  # adaptive: word ranks where the tail clusters start
    div_value: float = 4.0  # adaptive, untied: tail i projects to units // div_value ** (i + 1)
    mogrifier_rounds: int = 5  # mogrifier: the paper's PTB model's r (Melis et al. 2020, Table 4)
    mogrifier_rank: int = 0  # mogrifier: 0 full matrices, else their factors' rank k

    def __post_init__(self):
        if self.mode not in MODES:
            raise RnnlmError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        for name in ("vocab_size", "emsize", "nhid", "nlayers"):
            if getattr(self, name) < 1:
                raise RnnlmError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in DROPOUTS:
            if not 0 <= getattr(self, name) < 1:
                raise RnnlmError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.init_range <= 0:
            raise RnnlmError(f"init_range must be positive, got {self.init_range}")
        if self.rnn_init not in RNN_INITS:
            raise RnnlmError(f"unknown rnn_init {self.rnn_init!r}; choose one of "
                             f"{', '.join(RNN_INITS)}")
        if self.mogrifier_rounds < 0:
            raise RnnlmError(f"mogrifier_rounds must be at least 0, got {self.mogrifier_rounds}")
        if not 0 <= self.mogrifier_rank <= min(self.emsize, self.nhid):
            raise RnnlmError(f"mogrifier_rank must be in [0, {min(self.emsize, self.nhid)}] (0: "
                             f"full matrices; at most emsize and nhid), got {self.mogrifier_rank}")
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))  # model.json holds a list
        clusters.check(self.softmax, self.cutoffs, self.div_value, self.vocab_size,
                       self.layer_sizes()[-1], self.tied)

    def fields(self):
        """What model.json records: the full softmax's and the fused modes' configs as they were
        before there was another softmax or mode, so their runs' files are unchanged."""
        dropped = (SOFTMAX_FIELDS if self.softmax == "full" else ()) + (
            MOGRIFIER_FIELDS if self.mode != "mogrifier" else ())
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in dropped}

    def layer(self, inputs, units, weight_dropout):
        """A Mogrifier LSTM layer (the stack's ``layer``) of this config's rounds and rank."""
        return MogrifierLayer(inputs, units, self.mogrifier_rounds, self.mogrifier_rank,
                              weight_dropout)

    def layer_sizes(self):
        """Units per recurrent layer: nhid, the last emsize when tied (AWD's layout)."""
        return [self.nhid] * (self.nlayers - 1) + [self.emsize if self.tied else self.nhid]



class RNNModel(gluon.HybridBlock):
    """The language model: ``model(ids (T, B), state) -> (logits (T, B, vocab), new state)``.

    ``sparse_grad``: an untied embedding's gradient holds only the rows a window touched
    (row_sparse; a window reads at most bptt x batch of vocab rows), so the update and the norm
    skip the others. The training stage asks for it on the CPU only, where reading its row count
    costs no wait. A tied matrix's gradient is dense anyway (the decoder's part).
    """

    def __init__(self, config, sparse_grad=False, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        c = config
        with self.name_scope():
            self.embedding = gluon.nn.Embedding(c.vocab_size, c.emsize,
                                                sparse_grad=sparse_grad and not c.tied)
            self.drop = gluon.nn.Dropout(c.dropout)
            if c.dropout_e:
                self.drop_e = EmbeddingDropout(c.dropout_e, c.vocab_size)
            if c.dropout_i:
                self.drop_i = locked_dropout(c.dropout_i)
            self.rnn = RecurrentStack(c.mode, c.layer_sizes(), c.emsize, c.dropout, c.dropout_h,
                                      c.weight_dropout,
                                      c.layer if c.mode == "mogrifier" else None)
            if c.dropout_o:
                self.drop_o = locked_dropout(c.dropout_o)
            # Tied: built on the embedding's parameter dict, so "weight" is the embedding matrix.
            shared = self.embedding.params if c.tied else None
            if c.softmax == "adaptive":
                self.decoder = AdaptiveSoftmax(c.vocab_size, c.layer_sizes()[-1], c.cutoffs,
                                               c.div_value, c.tied, params=shared)
            else:
                self.decoder = gluon.nn.Dense(c.vocab_size, in_units=c.layer_sizes()[-1],
                                              flatten=False, params=shared)

    def begin_state(self, batch_size, ctx):
        return self.rnn.begin_state(batch_size, ctx)

    @property
    def static_shape(self):
        """Whether a graph of this model may be hybridized with static_shape: not a mogrifier's,
        whose ``contrib.foreach`` then hands the ops that read its outputs memory it never
        wrote (MXNet 1.9.1; tests/test_mogrifier.py); static_alloc alone is right."""
        return self.config.mode != "mogrifier"

    def hybrid_forward(self, F, inputs, states):
        logits, states, _, _ = self.outputs(F, inputs, states)
        return logits, states

    def outputs(self, F, inputs, states):
        """(logits (T, B, vocab), new state, the last layer's output, that output after its
        dropouts): the forward pass, and what AR and TAR (rnnlm.awd.penalties) read."""
        states, raw, dropped = self.features(F, inputs, states)
        return self.decoder(dropped), states, raw, dropped  # (T, B, vocab)

    def features(self, F, inputs, states):
        """(new state, the last layer's output, that output after its dropouts): what the
        decoder reads."""
        c = self.config
        emb = self.embedding(inputs)  # (T, B, emsize)
        if c.dropout_e:
            emb = F.broadcast_mul(emb, self.drop_e(inputs))
        emb = self.drop(emb)
        if c.dropout_i:
            emb = self.drop_i(emb)
        raw, states = self.rnn(emb, states)  # (T, B, last layer's size)
        dropped = self.drop(raw)
        if c.dropout_o:
            dropped = self.drop_o(dropped)
        return states, raw, dropped

    def initialize_weights(self, ctx):
        self.initialize(init.Uniform(self.config.init_range), ctx=ctx)
        if self.config.rnn_init == "pytorch":  # an explicit init overrides the biases' zeros too
            for layer in self.rnn.layers():
                bound = init.Uniform(1 / math.sqrt(layer.nhid))
                layer.weight.initialize(Pieces(layer, bound, bound), ctx=ctx, force_reinit=True)

    def param_count(self):
        """Trainable numbers; a tied matrix counts once."""
        return sum(p.data(p.list_ctx()[0]).size for p in self.collect_params().values())

    def arrays(self):
        """Every parameter's values by the name model.params gives them (gluon.rnn's for the
        recurrent layers' pieces, views of their vectors); a tied matrix once."""
        out, seen = {}, set()
        for name, param in self._collect_params_with_prefix().items():
            if param not in seen:
                seen.add(param)
                data = param.data(param.list_ctx()[0])
                layer = self._layer_of(name)
                out.update({name: data} if layer is None else zip(
                    self._file_names(name, layer), layer.pieces(data).values(), strict=True))
        return out

    def _layer_of(self, name):
        """The RecurrentLayer whose vector is saved under ``name`` (rnn.layerI.weight), or None."""
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "rnn" and parts[2] == "weight":
            return getattr(self.rnn, parts[1])
        return None

    @staticmethod
    def _file_names(name, layer):
        """{name in model.params: shape} of a layer's pieces: gluon.rnn's one-layer names."""
        prefix = name.removesuffix("weight") + "_unfused.0."
        return {prefix + piece: shape for piece, shape in layer.shapes.items()}

    def save_parameters(self, filename):
        """Gluon's file, its recurrent layers as gluon.rnn's four arrays each."""
        arrays = self.arrays()
        if self.config.tied:  # as Gluon does, a shared matrix under both names
            arrays["decoder.weight"] = arrays["embedding.weight"]
        nd.save(str(filename), {k: v.copyto(mx.cpu()) for k, v in arrays.items()})

    def load_parameters(self, filename, ctx=None):
        """A file of save_parameters (or of gluon.rnn layers: the same names) onto ``ctx``."""
        loaded = read_arrays(filename)
        for name, param in self._collect_params_with_prefix().items():
            layer = self._layer_of(name)
            shapes = {name: param.shape} if layer is None else self._file_names(name, layer)
            for key, shape in shapes.items():
                found = loaded[key].shape if key in loaded else None
                if found != shape:
                    raise RnnlmError(f"{filename}: array {key} should be {shape}, found {found}: "
                                     "not this model's parameters (other settings?); rerun the "
                                     "train stage")
            param._load_init(loaded[name] if layer is None else nd.concat(
                *[loaded[key].reshape((-1,)) for key in shapes], dim=0), ctx)


def read_arrays(path):
    """``nd.load`` of ``path``; a file MXNet cannot read (cut short, not its format) is
    Damaged, named, instead of MXNet's traceback."""
    try:
        return nd.load(str(path))
    except mx.base.MXNetError as err:
        reason = str(err).strip().splitlines()[-1].rsplit(": ", 1)[-1]
        raise Damaged(f"{path} is damaged (MXNet cannot read it: {reason})") from None


def save_model_config(config, path):
    write_text(path, json.dumps(config.fields(), indent=2) + "\n")
