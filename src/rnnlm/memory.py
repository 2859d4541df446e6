"""Memory known before it is spent: the peak memory of a train, evaluate or dynamic evaluation job
(``dynamic_parts``: its worker processes too), estimated from the model's shapes, the vocabulary
and the arrays; the workflow declares it as the job's mem_mb, and rnnlm.limits refuses a job that
would not fit. The estimate sums, in float32 (4 bytes):

    baseline       the process before any model: Python, MXNet, rnnlm (``BASELINE_MB``)
    weights        every parameter; gradients, one more copy; checkpoint, the copy a save makes
    tied slices    a tied adaptive softmax's copies of the embedding rows each of its parts reads
    fused RNN      the fused operator's own copies of each recurrent layer's weights: its forward
                   and backward passes in training and its forward pass in validation
    average        NT-ASGD: the running mean and the copy kept while the mean is swapped in
    activations    a window's: per layer and token, the gates and states the backward pass reads
    logits         a window's rows over the vocabulary (or the adaptive softmax's clusters), the
                   log-softmax and their gradient
    validation     a window of the validation (evaluate: test) array, in predict mode
    data           the id arrays, float32 on the device

Each part's factor was measured on MXNet 1.9.1's CPU build (oneDNN) with the NaiveEngine, per
part (a process's RSS after each step) and whole (peak RSS of `rnnlm train`, tests/
test_memory.py), rounded up: the estimate was 1.0 to 1.4 times the peak there. It does not import
MXNet: the workflow reads it when it plans and when it schedules.
"""

import dataclasses
import json
import math

import numpy as np

GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3, "mogrifier": 4}  # rnnlm.recurrent's
FLOAT = 4  # bytes of a float32
MB = 2**20
BASELINE_MB = 200  # `rnnlm train` of a 16-unit model peaks at 188 MB (MXNet 1.9.1, Python 3.11)
EVAL_WINDOW = 35  # rnnlm.step's: validation windows have at least this many rows
MIN_WINDOW, WINDOW_SD = 5, 5  # rnnlm.awd.windows': variable windows are N(bptt, 5), at least 5
FUSED_TRAIN_COPIES = 9  # measured 7.6 per part, 9.1 in whole runs: 2.2 forward, 3.2 backward,
# 2.2 the validation graph's
FUSED_EVAL_COPIES = 3  # measured 2.2: the forward pass in predict mode
LOGIT_COPIES = 2.5  # measured 2.4: logits and log-softmax (1.2), their gradient (1.2)
EVAL_LOGIT_COPIES = 1.5  # measured 1.25
TIED_SLICE_COPIES = 6  # measured 4.4: a tied adaptive softmax's slices of the embedding matrix
# Dynamic evaluation (rnnlm.adapt), copies of the weights, measured 2026-12-04 (tests/
# test_memory.py's models, the RSS of the process tree sampled every 5 ms): one process, 9.6 to
# 11.8 (theta, grad, theta0, MS, rates, the update's three arrays, the statistics' sums and
# squares); the job beside its workers, 7; each worker, 12 (MS and the rates as the job sent
# them too), its fused RNN 4.7 copies.
DYNAMIC_COPIES = 13
DYNAMIC_JOB_COPIES = 8
WORKER_COPIES = 13
WORKER_FUSED_COPIES = 5
PASS_OUTPUT_COPIES = 3  # a pass's last-layer outputs: per segment, joined, as numpy
MODEL_KEYS = ("emsize", "nhid", "nlayers", "tied", "softmax", "cutoffs", "div_value",
              "mogrifier_rounds", "mogrifier_rank")


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What a model's arrays are made of: rnnlm.model.ModelConfig's sizes, without MXNet."""

    mode: str
    vocab_size: int
    emsize: int
    nhid: int
    nlayers: int
    tied: bool = True
    softmax: str = "full"
    cutoffs: tuple = ()
    div_value: float = 4.0
    mogrifier_rounds: int = 5
    mogrifier_rank: int = 0

    @classmethod
    def of(cls, mode, vocab_size, settings):
        """The shapes of an experiment's settings (or a ModelConfig's fields) for ``mode``."""
        return cls(mode, vocab_size, **{k: settings[k] for k in MODEL_KEYS if k in settings})

    def layers(self):
        """(inputs, units) per recurrent layer: the last has emsize units when tied (AWD's)."""
        units = [self.nhid] * (self.nlayers - 1) + [self.emsize if self.tied else self.nhid]
        return list(zip([self.emsize, *units[:-1]], units, strict=True))

    def recurrent(self):
        """Elements of each layer's one flat vector: gates x units x (inputs + units + 2)."""
        gates = GATES[self.mode]
        return [gates * units * (inputs + units + 2) for inputs, units in self.layers()]

    def rounds(self):
        """Elements of each layer's Mogrifier rounds (rnnlm.cells.mogrifier): per round a matrix
        (or two rank-k factors) and a bias; none for the other modes."""
        if self.mode != "mogrifier":
            return [0] * self.nlayers
        sizes = []
        for inputs, units in self.layers():
            ends = [(inputs, units) if j % 2 == 0 else (units, inputs)
                    for j in range(self.mogrifier_rounds)]
            k = self.mogrifier_rank
            sizes.append(sum(out + (k * (out + inp) if k else out * inp) for out, inp in ends))
        return sizes

    def tails(self):
        """Words in each adaptive tail cluster (rnnlm.softmax.clusters.bounds)."""
        edges = [*self.cutoffs, self.vocab_size]
        return [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def projections(self):
        """Units of each untied tail's projection (rnnlm.softmax.clusters.projections)."""
        units = self.layers()[-1][1]
        return [int(units // self.div_value ** (i + 1)) for i in range(len(self.cutoffs))]

    def parameters(self):
        """Every trainable number, a tied matrix once (RNNModel.param_count)."""
        units, clusters = self.layers()[-1][1], len(self.cutoffs)
        shared = self.vocab_size * self.emsize + sum(self.recurrent()) + sum(self.rounds())
        if self.softmax == "full":
            return shared + self.vocab_size * (1 if self.tied else units + 1)
        if self.tied:  # a bias per word and per cluster token, a vector per cluster token
            return shared + self.vocab_size + clusters * (units + 1)
        return shared + (self.cutoffs[0] + clusters) * units + sum(
            size * (units + words) for size, words in zip(self.projections(), self.tails(),
                                                          strict=True))

    def tied_adaptive(self):
        """Elements of the embedding matrix when a tied adaptive softmax slices it into its head
        and tails (each graph copies the slices, and their gradients); else 0."""
        return self.vocab_size * self.emsize if self.tied and self.softmax != "full" else 0

    def logit_columns(self, shares=None):
        """Numbers a window's row computes in the output layer: one per word, or the adaptive
        softmax's head and, for the ``shares`` of rows whose target each tail holds (all, if
        None), its words and projection."""
        if self.softmax == "full":
            return self.vocab_size
        shares = shares or [1.0] * len(self.cutoffs)
        sizes = [0] * len(self.cutoffs) if self.tied else self.projections()
        return self.cutoffs[0] + len(self.cutoffs) + sum(
            share * (words + size)
            for share, words, size in zip(shares, self.tails(), sizes, strict=True))


def tail_shares(shapes, counts):
    """Rows each adaptive tail computes, as a share of a window's: twice its share of the
    training tokens (ids are ranks by count), at most all. A window's count varies around the
    share, and the graph computes the most any window has (rnnlm.softmax.clusters.capacities);
    None for the full softmax."""
    if shapes.softmax == "full":
        return None
    total, edges = max(sum(counts), 1), [*shapes.cutoffs, len(counts)]
    return [min(1.0, 2 * sum(counts[a:b]) / total) for a, b in zip(edges[:-1], edges[1:],
                                                                  strict=True)]


def train_window(bptt, variable_bptt=False):
    """Rows of the longest training window: bptt, or about the longest of awd-lstm-lm's drawn
    lengths (N(bptt, 5): six standard deviations above)."""
    return max(MIN_WINDOW, bptt + 6 * WINDOW_SD) if variable_bptt else bptt


def eval_window(bptt, steps=None):
    """Rows of a validation or evaluation window (rnnlm.step.split_loss), at most the array's."""
    rows = max(bptt, EVAL_WINDOW)
    return rows if steps is None else max(1, min(rows, steps - 1))


def train_parts(shapes, bptt, train_shape, valid_shape, optimizer="sgd", variable_bptt=False,
                shares=None):
    """{part: bytes} of a training job's peak (the module's docstring names the parts):
    ``train_shape`` and ``valid_shape`` are the arrays' (steps, columns)."""
    params, fused = shapes.parameters(), sum(shapes.recurrent())
    rows = train_shape[1] * min(train_window(bptt, variable_bptt), train_shape[0] - 1)
    return {
        "baseline": BASELINE_MB * MB,
        "weights": 3 * params * FLOAT,  # the weights, their gradients, a checkpoint's copy
        "fused RNN": FUSED_TRAIN_COPIES * fused * FLOAT,
        "average": 2 * params * FLOAT if optimizer == "nt-asgd" else 0,
        "tied slices": TIED_SLICE_COPIES * shapes.tied_adaptive() * FLOAT,
        "activations": rows * activation_columns(shapes, training=True) * FLOAT,
        "logits": LOGIT_COPIES * rows * shapes.logit_columns(shares) * FLOAT,
        "validation": window_bytes(shapes, bptt, valid_shape, shares),
        "data": (math.prod(train_shape) + math.prod(valid_shape)) * FLOAT,
    }


def evaluate_parts(shapes, bptt, data_shape, shares=None):
    """{part: bytes} of an evaluation job's peak: the model in predict mode over one array."""
    return {
        "baseline": BASELINE_MB * MB,
        "weights": shapes.parameters() * FLOAT,
        "fused RNN": FUSED_EVAL_COPIES * sum(shapes.recurrent()) * FLOAT,
        "validation": window_bytes(shapes, bptt, data_shape, shares),
        "data": math.prod(data_shape) * FLOAT,
    }


def dynamic_parts(shapes, segment, ms_shape, valid_steps, test_steps, workers=1, hidden=False):
    """{part: bytes} of a dynamic evaluation job's peak (rnnlm.adapt), its ``workers`` worker
    processes' included when more than 1: ``ms_shape`` the training array's (steps, columns),
    whose windows the gradient statistics read, ``hidden`` whether the cache runs on top (each
    pass then keeps the last layer's outputs)."""
    params, fused = shapes.parameters(), sum(shapes.recurrent())
    units = shapes.layers()[-1][1] if hidden else 0
    rows = ms_shape[1] * min(segment, ms_shape[0] - 1)
    streams = (valid_steps + test_steps) * (FLOAT + 8)  # float32, and int64 ids for Backward
    one_pass = PASS_OUTPUT_COPIES * max(valid_steps, test_steps) * units * FLOAT
    alone = workers == 1
    parts = {
        "baseline": BASELINE_MB * MB,
        "weights": (DYNAMIC_COPIES if alone else DYNAMIC_JOB_COPIES) * params * FLOAT,
        "fused RNN": FUSED_TRAIN_COPIES * fused * FLOAT,
        "statistics window": rows * (activation_columns(shapes, training=True)
                                     + LOGIT_COPIES * shapes.logit_columns()) * FLOAT,
        "data": math.prod(ms_shape) * FLOAT + streams,
        # kept: the best valid pass's, the static and the dynamic test pass's, and one begun
        # early for a point that lost; in this process, the running pass's too
        "outputs": (valid_steps + 3 * test_steps) * units * FLOAT + (one_pass if alone else 0),
    }
    if not alone:
        parts["workers"] = workers * (
            BASELINE_MB * MB + (WORKER_COPIES * params + WORKER_FUSED_COPIES * fused) * FLOAT
            + streams + one_pass + segment * LOGIT_COPIES * shapes.logit_columns() * FLOAT)
    return parts


def activation_columns(shapes, training):
    """Numbers per window row kept by the layers: in training, each layer's gates and states
    for the backward pass (measured 2.6 x gates + 5.7 per unit) and the embedding's output,
    dropout and gradient; in predict mode, one layer's at a time. A mogrifier's round counts as
    two gates more (its gate and the value gated; an estimate, not measured)."""
    gates = GATES[shapes.mode] + (2 * shapes.mogrifier_rounds if shapes.mode == "mogrifier" else 0)
    per_unit = 3 * gates + 6 if training else gates + 1
    return sum(units for _, units in shapes.layers()) * per_unit + shapes.emsize * (
        4 if training else 2)


def window_bytes(shapes, bptt, shape, shares=None):
    """A predict-mode window of an array of ``shape``: its activations and logits."""
    rows = shape[1] * eval_window(bptt, shape[0])
    return (rows * activation_columns(shapes, training=False)
            + EVAL_LOGIT_COPIES * rows * shapes.logit_columns(shares)) * FLOAT


def megabytes(parts):
    """The estimate in MB (2^20 bytes), rounded up: a job's mem_mb."""
    return math.ceil(sum(parts.values()) / MB)


def train_estimate(mode, settings, counts, train_shape, valid_shape):
    """{part: bytes} of a training job: ``settings`` holds the experiment's keys (or
    ModelConfig's and TrainConfig's fields), ``counts`` the vocabulary's, the shapes the train
    and valid arrays' (steps, columns)."""
    shapes = Shapes.of(mode, len(counts), settings)
    return train_parts(shapes, settings["bptt"], train_shape, valid_shape, settings["optimizer"],
                       settings["variable_bptt"], tail_shares(shapes, counts))


def evaluate_estimate(model_fields, bptt, data_shape):
    """{part: bytes} of an evaluation job: ``model_fields`` as model.json holds them."""
    shapes = Shapes.of(model_fields["mode"], model_fields["vocab_size"], model_fields)
    return evaluate_parts(shapes, bptt, data_shape)


def dynamic_estimate(model_fields, segment, ms_shape, valid_steps, test_steps, workers, hidden):
    """{part: bytes} of a dynamic evaluation job: ``model_fields`` as model.json holds them."""
    shapes = Shapes.of(model_fields["mode"], model_fields["vocab_size"], model_fields)
    return dynamic_parts(shapes, segment, ms_shape, valid_steps, test_steps, workers, hidden)


def vocab_counts(path):
    """The counts column of a vocab.tsv (rnnlm.vocab); FileNotFoundError names ``path`` (the
    workflow asks before the vocab stage has run)."""
    with open(path) as lines:
        next(lines)
        return [int(line.rsplit("\t", 1)[1]) for line in lines]


def array_shape(path):
    """(steps, columns) of a batchified array, read from its header."""
    return np.load(path, mmap_mode="r").shape


def train_mb(mode, settings, vocab, train, valid):
    """A training job's mem_mb, from its files: the workflow's resource."""
    return megabytes(train_estimate(mode, settings, vocab_counts(vocab), array_shape(train),
                                     array_shape(valid)))


def evaluate_mb(model_json, bptt, data):
    """An evaluation job's mem_mb, from its files: the workflow's resource."""
    with open(model_json) as f:
        fields = json.load(f)
    return megabytes(evaluate_estimate(fields, bptt, array_shape(data)))


def dynamic_mb(model_json, segment, train, valid, test, workers, hidden):
    """A dynamic evaluation job's mem_mb, from its files: the workflow's resource."""
    with open(model_json) as f:
        fields = json.load(f)
    return megabytes(dynamic_estimate(fields, segment, array_shape(train), array_shape(valid)[0],
                                      array_shape(test)[0], workers, hidden))
