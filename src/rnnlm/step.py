"""The training step's pieces: windows of an id array, the model and its summed loss as one
compiled graph, the loss of a whole split, and the clipped SGD update.

A window of ``bptt`` rows of a time-major (steps, batch) array is read with its targets one row
down; its token losses are summed in the graph, so one cached call per window does the forward
pass and the loss. The update clips the global gradient norm and steps SGD in one operator per
array; only on the CPU, where operators run as they are called, is the clip factor read.
"""

import math

from rnnlm.awd.penalties import activation_penalty
from rnnlm.mx import gluon, nd
from rnnlm.softmax.clusters import capacities

EVAL_WINDOW = 35  # rows per evaluation window at least (state carried: speed only)


def windows(steps, bptt):
    """(start, length) of each window over an array of ``steps`` rows; targets are one row down.

        row      0 1 2 3 4 5 6 7 8 9        steps 10, bptt 4
        inputs   [0 . . 3][4 . . 7][8]
        targets    [1 . . 4][5 . . 8][9]
    """
    return [(i, min(bptt, steps - 1 - i)) for i in range(0, steps - 1, bptt)]


class WindowLoss(gluon.HybridBlock):
    """The model and its summed token loss as one graph: ``(ids, targets, state) -> (loss, state)``,
    or ``(loss, loss + penalty, state)`` with AR or TAR (``alpha``, ``beta``).

    The loss is Gluon's SoftmaxCrossEntropyLoss summed over the window, ``-pick(log_softmax)``,
    inside the model's graph: one cached call per window, no reshapes or loss ops in Python.
    With the adaptive softmax and a ``capacity`` (rows per tail cluster, ``tail_capacity``) it
    is the adaptive softmax's own loss, each tail computed only for its rows; without one, the
    pick of the full distribution (the plain formulation: the same loss, slower).
    """

    def __init__(self, model, alpha=0.0, beta=0.0, capacity=None, **kwargs):
        super().__init__(**kwargs)
        self.model, self.alpha, self.beta, self.capacity = model, alpha, beta, capacity
        self.penalised = bool(alpha or beta)

    def hybrid_forward(self, F, inputs, targets, states):
        if self.capacity is None:
            logits, states, raw, dropped = self.model.outputs(F, inputs, states)  # (T, B, V)
            loss = -F.pick(F.log_softmax(logits, axis=-1), targets, axis=-1).sum()  # (1,)
        else:
            states, raw, dropped = self.model.features(F, inputs, states)
            loss = self.model.decoder.loss(F, dropped, targets, self.capacity)  # (1,)
        if not self.penalised:
            return loss, states
        units = self.model.config.layer_sizes()[-1]
        return loss, loss + activation_penalty(F, raw, dropped, units, self.alpha,
                                               self.beta), states


def loss_graph(model, alpha=0.0, beta=0.0, static_shape=True, capacity=None):
    """WindowLoss of ``model``, compiled on its first call: build one per use and keep it.
    ``static_shape`` False for windows of many lengths: a static graph is planned anew at each."""
    net = WindowLoss(model, alpha, beta, capacity)
    net.hybridize(static_alloc=True, static_shape=static_shape and model.static_shape)
    return net


def tail_capacity(config, parts, cut):
    """Rows per tail cluster for windows ``cut`` of the (steps, B) id arrays ``parts`` (one per
    device), for an adaptive softmax's loss; None for the full softmax."""
    if config.softmax == "full":
        return None
    return capacities([p.asnumpy() for p in parts], config.cutoffs, cut)


def eval_graph(model, parts, bptt):
    """loss_graph for ``split_loss(net, parts, bptt)``."""
    cut = windows(parts[0].shape[0], max(bptt, EVAL_WINDOW))
    return loss_graph(model, capacity=tail_capacity(model.config, parts, cut))


def window_loss(net, parts, states, start, length):
    """Summed token loss of one window, one (1,) array per device, and what to back-propagate
    (the same, plus AR and TAR where the graph has them); updates ``states``."""
    losses, objectives = [], []
    for k, part in enumerate(parts):
        x, y = part[start:start + length], part[start + 1:start + 1 + length]  # (T, B_k) views
        out = net(x, y, states[k])
        loss, objective, states[k] = out if net.penalised else (out[0], out[0], out[1])
        losses.append(loss)
        objectives.append(objective)
    return losses, objectives


def split_loss(net, parts, bptt):
    """Mean token loss of ``net`` (a loss_graph) over a whole array in predict mode, the state
    carried; and its tokens.

    The state carries across windows, so their length changes only the speed: at least
    EVAL_WINDOW rows each, as longer products run faster than ``bptt``'s.
    """
    states = [net.model.begin_state(p.shape[1], p.context) for p in parts]
    totals = [nd.zeros((1,), ctx=p.context, dtype="float64") for p in parts]
    steps = parts[0].shape[0]
    for start, length in windows(steps, max(bptt, EVAL_WINDOW)):
        losses, _ = window_loss(net, parts, states, start, length)
        for total, loss in zip(totals, losses, strict=True):
            total += loss.astype("float64")
    tokens = (steps - 1) * sum(p.shape[1] for p in parts)
    return sum(float(t.asscalar()) for t in totals) / tokens, tokens


def global_norm(grads):
    """The global norm of one device's ``grads``, left there as a (1,) array.

    Each array's sum of squares is a dot with itself, as gluon.utils.clip_global_norm takes it:
    on the CPU six times faster than multi_sum_sq, whose kernel reads about 2 GB/s.
    """
    flat = [(g.data if g.stype == "row_sparse" else g).reshape((-1,)) for g in grads]
    return nd.sqrt(nd.add_n(*[nd.dot(x, x) for x in flat]))


HOST_RATE_DEVICES = ("cpu",)  # where clipped_sgd reads the norm on the host: see there


def clipped_sgd(params, ctx, norm, max_norm, lr, batch_size, no_decay, wd=0.0):
    """w -= lr * (min(1, max_norm / norm) * g / batch_size + wd * w) on ``ctx``: clip and SGD
    step at once (``no_decay``: a (1,) zero weight decay on ``ctx``, made once per run, not per
    step). The decay is not clipped (PyTorch's SGD adds it after clip_grad_norm, MXNet's sgd
    after its clip), so the operators, which scale it by their rate, get it divided by the clip
    factor.

    gluon.utils.clip_global_norm then Trainer.step, without their costs: no pass rescales the
    gradients first, and each array gets its own update (MXNet's multi-array kernels visit every
    array per element). On the CPU the engine runs each operator as it is called (the CLI's
    NaiveEngine), so the norm is there already and reading it costs nothing: the rate becomes a
    number for sgd_update, 1.5x faster than the update that takes it as an array, and which
    updates only the rows of a row_sparse gradient (exact: SGD without weight decay leaves the
    others as they are). On a GPU the rate stays an array on the device, and Python never waits
    for the norm.
    """
    if ctx.device_type in HOST_RATE_DEVICES:
        factor = min(1.0, max_norm / (float(norm.asscalar()) + 1e-8))
        decay = wd / factor if wd and factor else 0.0  # factor 0: an infinite norm, diverged
        for p in params:
            w = p.data(ctx)
            nd.sgd_update(w, p.grad(ctx), lr=lr * factor, wd=decay,
                          rescale_grad=1 / batch_size, out=w)
        return
    factor = nd.minimum(max_norm / (norm + 1e-8), 1.0)  # (1,)
    decay = wd / factor if wd else no_decay
    for p in params:
        w = p.data(ctx)
        nd.preloaded_multi_sgd_update(w, p.grad(ctx), factor * lr, decay,
                                      rescale_grad=1 / batch_size, num_weights=1, out=w)


def perplexity(loss):
    return math.exp(loss) if loss < 700 else math.inf  # a finite loss can still overflow exp
