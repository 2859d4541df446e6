"""Dynamic evaluation (Krause, Kahembwe, Murray, Renals 2018, "Dynamic Evaluation of Neural
Sequence Models"; benkrause/dynamic-evaluation, dynamiceval.py): the model reads a stream at
batch 1 in segments of ``segment`` tokens; each segment is scored, then the weights take one
gradient step on that segment's mean loss, so what recurs in the stream becomes likelier. The
hidden state is carried across segments (detached); the trained weights theta0 on disk never
change, and the decay pulls the adapted weights back toward them.

Rules (``rule``), both as dynamiceval.py applies them, decay and gradient from the same weights:

    rms:  theta += decay * rate * (theta0 - theta) - lr * grad / (MS + EPS)
    sgd:  theta += decay * (theta0 - theta) - lr * grad

MS is the root of the mean squared gradient of each weight over ``ms_windows`` windows of the
training split (``gradient_statistics``), and rate = MS / (the mean over weight arrays of the
mean of their MS), capped so that decay * rate <= 1 (dynamiceval.py clips rate at 1 / lambda).
"""

import logging
import time

import numpy as np

from rnnlm.adapt.cache import LastLayer
from rnnlm.io import RnnlmError
from rnnlm.mx import autograd, host_view, nd

log = logging.getLogger(__name__)

EPS = 2e-5  # dynamiceval.py's --epsilon
RULES = ("rms", "sgd")
REPORT_SECONDS = 10.0  # a progress line at most this often


def trained_params(model):
    """The model's weight arrays, each once (a tied matrix is one parameter)."""
    return [p for p in model.collect_params().values() if p.grad_req != "null"]


def _detached(states):
    return [s.detach() for s in states]


def host_memory(ctx):
    """Whether numpy may work on the arrays' own memory (rnnlm.mx.host_view): a CPU's."""
    return ctx.device_type == "cpu"


class Backward:
    """Forward and backward of a window's mean token loss in predict mode (every dropout the
    identity, as dynamiceval.py's model.eval()), the embedding looked up outside the graph.

    Autograd would write the embedding matrix's whole gradient, zeros but for the rows read,
    and, tied, add it to the decoder's with add_n: 2.6 ms of a segment's 11.4 on PTB's tied
    2x200 model at batch 1, for 5 rows. Here the gradient of the looked-up vectors is summed per
    word and added into those rows alone: a tied matrix's gradient is the decoder's plus them,
    an untied one's zeros plus them. The sums are numpy's on any device, so a GPU's gradient is
    a CPU's to the bit."""

    def __init__(self, model):
        self.model, self.matrix, self.tied = model, model.embedding.weight, model.config.tied
        self.net = LastLayer(model, embedded=True)
        self.net.hybridize(static_alloc=True, static_shape=model.static_shape)

    def forward(self, x, y, states):
        """(log p (T, B), last layer (T, B, H), states) with no backward: the static model."""
        return self.net(self.model.embedding(x), y, states)

    def __call__(self, x, y, states, ids, host):
        """``forward`` and the gradients of every weight; ``ids``: x as a numpy array;
        ``host``: whether to add the rows in numpy on the gradient's memory (a CPU's)."""
        emb = self.model.embedding(x)
        emb.attach_grad()
        with autograd.record(train_mode=False):
            logp, out, states = self.net(emb, y, states)
        logp.backward(nd.full(logp.shape, -1.0 / logp.size, ctx=logp.context), train_mode=False)
        grad = self.matrix.grad(x.context)
        if host:
            nd.waitall()  # the backward has written both gradients
            rows = host_view(emb.grad)
        else:
            rows = emb.grad.asnumpy()
        words, which = np.unique(ids, return_inverse=True)
        sums = np.zeros((words.size, rows.shape[-1]), np.float32)
        np.add.at(sums, which.ravel(), rows.reshape(-1, rows.shape[-1]))
        if host:
            matrix = host_view(grad)
            if not self.tied:
                matrix[:] = 0
            matrix[words] += sums
        else:
            if not self.tied:
                grad[:] = 0
            index = nd.array(words, ctx=grad.context, dtype="int64")
            grad[index] += nd.array(sums, ctx=grad.context)
        return logp, out, _detached(states)


def gradient_statistics(model, train, segment, windows):
    """MS of each weight array: sqrt(mean over the first ``windows`` windows of ``segment`` rows
    of the (steps, B) array ``train`` of grad ** 2), the gradient of each window's mean token
    loss, the state carried (dynamiceval.py gradstat, lines 88-151). Returns (MS arrays, the
    windows read): fewer than asked when the split holds fewer."""
    params = trained_params(model)
    backward = Backward(model)
    ids = train[:min(train.shape[0], windows * segment)].asnumpy().astype(np.int64)  # rows read
    squares = [nd.zeros(p.shape, ctx=train.context) for p in params]
    states = model.begin_state(train.shape[1], train.context)
    done = 0
    for start in range(0, train.shape[0] - 1 - segment + 1, segment):  # whole windows only
        if done == windows:
            break
        x, y = train[start:start + segment], train[start + 1:start + 1 + segment]
        _, _, states = backward(x, y, states, ids[start:start + segment],
                                host_memory(train.context))
        for total, p in zip(squares, params, strict=True):
            g = p.grad(train.context)
            total += g * g
        done += 1
    if not done:
        raise RnnlmError(f"the training array ({train.shape[0]} rows) has no window of "
                         f"{segment + 1} rows for the gradient statistics; lower "
                         "dynamic_eval.segment or train on a longer split")
    return [nd.sqrt(total / done) for total in squares], done


def decay_rates(ms):
    """dynamiceval.py's decrate, MS / gsum (lines 133-150): gsum the mean over the weight arrays
    of each array's mean MS (an unweighted mean of means, as there)."""
    gsum = sum(float(m.mean().asscalar()) for m in ms) / len(ms)
    return [m / gsum for m in ms]


class Update:
    """One grid point's update, applied in place to every weight after a segment's backward:
    theta += A * (theta0 - theta) - B * grad, computed as (1 - A) * theta + A * theta0 - B * grad
    with 1 - A, A * theta0 and B made once per grid point.

    rms: A = min(decay * rate, 1) (dynamiceval.py lines 159-171 clip rate at 1 / lambda), B = lr
    / (MS + EPS); dW as dynamiceval.py line 210, both terms from the weights before the step.
    sgd: A = decay, B = lr (scalars). Four in-place operators per weight array, none allocating
    (five, theta0 - theta first, took 1.3 times as long). MXNet has no stock operator whose rates
    are arrays, and its elementwise CPU kernels are slow: on a CPU the same four run in numpy on
    the weights' and gradients' own memory (rnnlm.mx.host_view), 2.2 times faster on the tied
    2x200 model's 2.6 M weights (benchmarks/README.md); elsewhere MXNet's.
    """

    def __init__(self, params, ctx, theta0, ms, rates, rule, lr, decay, on_host=None):
        self.params, self.ctx = params, ctx
        self.on_host = host_memory(ctx) if on_host is None else on_host
        minimum = np.minimum if self.on_host else nd.minimum
        if self.on_host:  # numpy's on the arrays' memory: one array's temporaries at a time
            nd.waitall()
            theta0, ms, rates = ([host_view(a) for a in arrays] for arrays in (theta0, ms, rates))
        self.keep, self.toward, self.step = [], [], []
        for t0, m, r in zip(theta0, ms, rates, strict=True):
            pull, step = (minimum(decay * r, 1.0), lr / (m + EPS)) if rule == "rms" else (
                decay, lr)
            self.keep.append(1 - pull)
            self.toward.append(pull * t0)
            self.step.append(step)

    def __call__(self):
        if self.on_host:
            nd.waitall()  # the backward has read the weights and written the gradients
        for p, keep, toward, step in zip(self.params, self.keep, self.toward, self.step,
                                         strict=True):
            theta, grad = p.data(self.ctx), p.grad(self.ctx)
            if self.on_host:
                theta, grad = host_view(theta), host_view(grad)
            grad *= step
            theta *= keep
            theta += toward
            theta -= grad


class Adapter:
    """A trained model ready for dynamic passes: its weights theta0 kept aside, MS and the decay
    rates; ``restore`` puts theta0 back after a pass (the file on disk is never written)."""

    def __init__(self, model, ctx, ms, rates):
        self.model, self.ctx, self.ms, self.rates = model, ctx, ms, rates
        self.params = trained_params(model)
        self.theta0 = [p.data(ctx).copy() for p in self.params]
        self.backward = Backward(model)

    def restore(self):
        for p, theta0 in zip(self.params, self.theta0, strict=True):
            p.data(self.ctx)[:] = theta0

    def update(self, rule, lr, decay, on_host=None):
        """The Update of one grid point; None for lr 0, where the weights never move."""
        if lr == 0:
            return None
        return Update(self.params, self.ctx, self.theta0, self.ms, self.rates, rule, lr, decay,
                      on_host)

    def segment_pass(self, stream, segment, update, label=""):
        """Score a (steps, 1) stream segment by segment, each before ``update`` steps on it
        (None: the static model, no backward): (log p of each target (steps - 1,) float64, the
        last layer's output at each position (steps - 1, H) float32). Restores theta0 after."""
        states = self.model.begin_state(1, self.ctx)
        ids = stream.asnumpy().astype(np.int64)
        logps, outs = [], []
        total = stream.shape[0] - 1
        began = reported = time.monotonic()
        try:
            for start in range(0, total, segment):
                length = min(segment, total - start)
                x, y = stream[start:start + length], stream[start + 1:start + 1 + length]
                if update is None:
                    logp, out, states = self.backward.forward(x, y, states)
                else:
                    logp, out, states = self.backward(x, y, states, ids[start:start + length],
                                                      update.on_host)
                    update()
                logps.append(logp)
                outs.append(out)
                now = time.monotonic()
                if now - reported >= REPORT_SECONDS:
                    reported = now
                    done = start + length
                    log.info("%s: %d/%d tokens, %.0f tokens/s", label, done, total,
                             done / (now - began))
            logp = nd.concat(*logps, dim=0).asnumpy().astype(np.float64)[:, 0]
            out = nd.concat(*outs, dim=0).asnumpy()[:, 0]
        finally:
            self.restore()
        return logp, out
