"""Cache stage: the continuous cache pointer (Grave et al. 2016, "Improving Neural Language Models
with a Continuous Cache") over a trained run, as salesforce/awd-lstm-lm's pointer.py applies it.

At position t the cache's keys are the last layer's outputs h_i of the previous ``window``
positions and its values their targets y_i (the next words); its distribution over words is
softmax(theta * h_t . h_i) summed per word, and the prediction is

    p(w) = lambda * p_cache(w) + (1 - lambda) * p_model(w)

One pass of the model over each split keeps, per token, the model's log-probability of the
target and h_t; every (theta, lambda) of the grid is then computed from those arrays alone, in
chunks of tokens so that memory stays bounded for any window. theta and lambda are chosen on
validation over a grid that always holds lambda 0 (the model alone), so the cache never makes
validation worse, and applied to test once.
"""

import logging
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from rnnlm.device import contexts, load_array
from rnnlm.io import RnnlmError, write_json
from rnnlm.mx import gluon
from rnnlm.plan.flags import CACHE_LAMBDAS, CACHE_THETAS
from rnnlm.trained import load_model, trained_run

log = logging.getLogger(__name__)

PASS_WINDOW = 200  # rows per forward pass (the state is carried: speed only)
CHUNK_ENTRIES = 2 ** 22  # about the most query-by-key scores held at once (float32: 16 MB)


class LastLayer(gluon.HybridBlock):
    """A trained RNNModel's forward pass that also returns its last layer's output:
    ``(ids, targets, states) -> (log p(target) (T, B), h (T, B, nhid), states)``.

    Built from the model's embedding, rnn and decoder; called outside autograd.record (predict
    mode), where every dropout is the identity. ``embedded``: the first input is the embedding's
    output (T, B, emsize), looked up outside the graph (rnnlm.adapt.dynamic.Backward).
    """

    def __init__(self, model, embedded=False, **kwargs):
        super().__init__(**kwargs)
        self.model, self.embedded = model, embedded

    def hybrid_forward(self, F, ids, targets, states):
        emb = ids if self.embedded else self.model.embedding(ids)
        out, states = self.model.rnn(emb, states)  # (T, B, nhid)
        logits = self.model.decoder(out)  # (T, B, vocab)
        return F.pick(F.log_softmax(logits, axis=-1), targets, axis=-1), out, states


def model_pass(model, part, window=PASS_WINDOW):
    """One pass over a (steps, B) id array on one device, the state carried: the model's
    log-probability of each target (steps - 1, B) as float64, and the last layer's output at
    each position (steps - 1, B, nhid) as float32."""
    net = LastLayer(model)
    net.hybridize(static_alloc=True, static_shape=model.static_shape)
    states = model.begin_state(part.shape[1], part.context)
    logps, hiddens = [], []
    steps = part.shape[0]
    for start in range(0, steps - 1, window):
        length = min(window, steps - 1 - start)
        x, y = part[start:start + length], part[start + 1:start + 1 + length]
        logp, out, states = net(x, y, states)
        logps.append(logp.asnumpy().astype(np.float64))
        hiddens.append(out.asnumpy())
    return np.concatenate(logps), np.concatenate(hiddens)


def cache_probs(hidden, targets, window, thetas, chunk=None):
    """The cache's probability of each target, (len(thetas), N), for one stream: ``hidden``
    (N, H) the last layer's outputs, ``targets`` (N,) the next words.

    The cache applies at t >= window, once it holds exactly ``window`` earlier positions,
    t - window .. t - 1 (never t itself or later); before that the entry is NaN (no cache).
    pointer.py's test is ``start_idx + idx > window``: it starts one position later, and, with
    its --bptt shorter than the split, also skips the first position of each later chunk; both
    are artefacts of its loop, not of the method, and are not copied.
    """
    n = len(targets)
    out = np.full((len(thetas), n), np.nan)
    chunk = chunk or max(1, min(1024, CHUNK_ENTRIES // (2 * window)))
    for a in range(window, n, chunk):
        b = min(a + chunk, n)
        keys = hidden[a - window:b - 1]  # (b - a + window - 1, H): every key of the chunk
        scores = np.ascontiguousarray(hidden[a:b] @ keys.T)  # (C, C + window - 1)
        s0, s1 = scores.strides
        # band[r, j] = h_{a+r} . h_{a+r-window+j}: row r's own window, a strided view
        band = as_strided(scores, shape=(b - a, window), strides=(s0 + s1, s1))
        band = band - band.max(axis=1, keepdims=True).astype(np.float64)  # <= 0, each theta's max
        match = sliding_window_view(targets[a - window:b - 1], window) == targets[a:b, None]
        for k, theta in enumerate(thetas):
            e = np.exp(theta * band)  # the softmax over the window, unnormalized
            out[k, a:b] = np.where(match, e, 0.0).sum(axis=1) / e.sum(axis=1)
    return out


def stream_cache_probs(hidden, targets, window, thetas):
    """cache_probs of a (N, B) array, each column its own stream: a column never sees another's
    history. Returns (len(thetas), N, B)."""
    return np.stack([cache_probs(hidden[:, j], targets[:, j], window, thetas)
                     for j in range(targets.shape[1])], axis=-1)


def mixed_loss(logp, p_cache, lam):
    """Mean token loss of lambda * p_cache + (1 - lambda) * p_model, the model alone where the
    cache does not apply (NaN); over the last axes, one value per leading entry of p_cache.
    Computed in log space: lambda 0 gives the model's loss exactly."""
    with np.errstate(divide="ignore"):
        mixed = np.logaddexp(np.log(lam) + np.log(np.nan_to_num(p_cache)),
                             np.log1p(-lam) + logp)
    mixed = np.where(np.isnan(p_cache), logp, mixed)
    return -mixed.reshape(len(mixed), -1).mean(axis=1)


def choose(logp, p_cache, thetas, lambdas):
    """Every grid point's perplexity, [{theta, lambda, ppl}], and the (theta, lambda) of the
    lowest; lambda 0 is tried first, so a tie keeps the model alone."""
    lambdas = sorted({0.0, *lambdas})
    losses = np.array([mixed_loss(logp, p_cache, lam) for lam in lambdas])  # (lambda, theta)
    grid = [{"theta": theta, "lambda": lam, "ppl": math.exp(losses[i, k])}
            for i, lam in enumerate(lambdas) for k, theta in enumerate(thetas)]
    i, k = np.unravel_index(np.argmin(losses), losses.shape)
    return grid, thetas[k], lambdas[i]


def check_grid(window, thetas, lambdas):
    if window < 1:
        raise RnnlmError(f"cache window must be at least 1, got {window}")
    if not thetas or min(thetas) <= 0:
        raise RnnlmError(f"cache thetas must be positive numbers, got {list(thetas)}")
    if not lambdas or not all(0 <= lam < 1 for lam in lambdas):
        raise RnnlmError(f"cache lambdas must be in [0, 1), got {list(lambdas)}")


def check_window(part, path, window):
    """Refuse a window no position of the (steps, B) array ``part`` (read from ``path``) has
    that many earlier ones for in its column: the cache would never apply."""
    positions, columns = part.shape[0] - 1, part.shape[1]
    if window >= positions:
        raise RnnlmError(f"cache window {window} is not below the {positions} positions of each "
                         f"of the {columns} columns of {path}: the cache would never apply; "
                         f"lower cache.window below {positions}")


def split_arrays(model, path, ctx, window):
    """(log p(target), h, targets) of a split, from one model pass over its array; refused
    before the pass when no position of it has ``window`` earlier ones in its column."""
    part = load_array(path, model.config.vocab_size, [ctx])[0]
    check_window(part, path, window)
    logp, hidden = model_pass(model, part)
    return logp, hidden, part[1:].asnumpy().astype(np.int64)


def cache(run_dir, valid_path, test_path, out, window, thetas=CACHE_THETAS, lambdas=CACHE_LAMBDAS,
          device="cpu"):
    """Choose theta and lambda on validation, apply them to test once; write the JSON."""
    check_grid(window, thetas, lambdas)
    thetas = list(thetas)
    ctx = contexts(device)[0]
    model = load_model(trained_run(run_dir, "the cache"), ctx)
    valid_logp, valid_h, valid_y = split_arrays(model, valid_path, ctx, window)
    grid, theta, lam = choose(valid_logp, stream_cache_probs(valid_h, valid_y, window, thetas),
                              thetas, lambdas)
    test_logp, test_h, test_y = split_arrays(model, test_path, ctx, window)
    test_cache = stream_cache_probs(test_h, test_y, window, [theta])
    result = {"window": window, "theta": theta, "lambda": lam,
              "valid_tokens": valid_y.size, "test_tokens": test_y.size,
              "valid_ppl": math.exp(-valid_logp.mean()),
              "valid_ppl_cache": min(point["ppl"] for point in grid),
              "test_ppl": math.exp(-test_logp.mean()),
              "test_ppl_cache": math.exp(mixed_loss(test_logp, test_cache, lam)[0]),
              "grid": grid}
    write_json(out, result)
    log.info("%s: window %d, theta %g, lambda %g (chosen on validation): valid ppl %.2f -> %.2f, "
             "test ppl %.2f -> %.2f", run_dir, window, theta, lam, result["valid_ppl"],
             result["valid_ppl_cache"], result["test_ppl"], result["test_ppl_cache"])
    return result

