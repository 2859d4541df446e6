"""The adaptive softmax's clusters over word ids, without MXNet: the checks of its settings and
the row capacity of each tail cluster.

Ids are ranks by training frequency (rnnlm.vocab orders the vocabulary so), so ``cutoffs``
[c1, c2, ...] cut it into the head's shortlist [0, c1) and the tails [c1, c2), ..., [ck, V).
A training graph must have fixed shapes to stay compiled; each tail is computed for a fixed
number of rows per window, its capacity: the most targets it ever gets in one window of the
run's array (``capacities``), so no row is ever left out and the loss is exact.
"""

import numpy as np

from rnnlm.io import RnnlmError

SOFTMAXES = ("full", "adaptive")


def check(softmax, cutoffs, div_value, vocab_size, units, tied):
    """One-line RnnlmError naming the key of the first problem with these settings."""
    if softmax not in SOFTMAXES:
        raise RnnlmError(f"softmax {softmax!r} is unknown; choose one of {', '.join(SOFTMAXES)}")
    if softmax == "full":
        if cutoffs:
            raise RnnlmError(f"cutoffs {list(cutoffs)} are the adaptive softmax's; set softmax "
                             "adaptive or drop cutoffs")
        return
    if not cutoffs:
        raise RnnlmError("softmax adaptive needs cutoffs, word ranks where the tail clusters "
                         "start, e.g. cutoffs [2000, 6000]")
    if any(int(c) != c or c < 1 for c in cutoffs):
        raise RnnlmError(f"cutoffs {list(cutoffs)}: each must be an integer >= 1")
    if any(b <= a for a, b in zip(cutoffs[:-1], cutoffs[1:], strict=True)):
        raise RnnlmError(f"cutoffs {list(cutoffs)} are not increasing; list them in increasing "
                         "order, each once")
    if cutoffs[-1] >= vocab_size:
        raise RnnlmError(f"cutoffs {list(cutoffs)}: {cutoffs[-1]} is at or beyond the vocabulary "
                         f"size {vocab_size}; every cutoff must be below it")
    if not div_value >= 1:
        raise RnnlmError(f"div_value {div_value} is below 1; the tail clusters' projections "
                         "shrink by it, so it must be at least 1 (PyTorch's default 4.0)")
    for i, size in enumerate(projections(units, div_value, len(cutoffs))):
        if not tied and size < 1:
            raise RnnlmError(f"div_value {div_value}: tail cluster {i + 1}'s projection "
                             f"has {units} // {div_value:g}**{i + 1} = 0 units; lower div_value "
                             "or use fewer cutoffs")


def projections(units, div_value, clusters):
    """Units of each tail cluster's projection, as PyTorch's AdaptiveLogSoftmaxWithLoss sizes
    them: int(units // div_value ** (i + 1))."""
    return [int(units // div_value ** (i + 1)) for i in range(clusters)]


def bounds(cutoffs, vocab_size):
    """(start, end) of each tail cluster's ids."""
    edges = [*cutoffs, vocab_size]
    return list(zip(edges[:-1], edges[1:], strict=True))


def capacities(arrays, cutoffs, cut, chunk=1 << 20):
    """Per tail cluster, the most targets it gets in one window of ``cut`` ((start, length)
    windows, targets one row down) over (steps, B) id ``arrays`` (a run's device parts): the
    rows its graph computes per window (at least 1). Read ``chunk`` rows at a time."""
    cut = np.asarray(cut, dtype=np.int64).reshape(-1, 2)
    edges = np.asarray(cutoffs)
    most = np.ones(len(cutoffs), dtype=np.int64)
    for array in arrays:
        per_row = np.zeros((len(array) + 1, len(cutoffs)), dtype=np.int64)  # row r: rows < r
        for start in range(0, len(array), chunk):
            cluster = np.searchsorted(edges, np.asarray(array[start:start + chunk]), "right")
            per_row[start + 1:start + 1 + len(cluster)] = np.stack(
                [(cluster == i + 1).sum(axis=1) for i in range(len(cutoffs))], axis=1)
        per_row = np.cumsum(per_row, axis=0)
        counts = per_row[cut[:, 0] + 1 + cut[:, 1]] - per_row[cut[:, 0] + 1]  # (windows, K)
        most = np.maximum(most, counts.max(axis=0, initial=0))
    return tuple(int(n) for n in most)
