"""The adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs"), the
decoder of a model with ``softmax: adaptive``.

    p(w) = head(h)[w]                                   w in the shortlist [0, c1)
    p(w) = head(h)[c1 + i] * tail_i(h)[w - start_i]     w in tail cluster i

``head`` is a softmax over the shortlist and one token per tail cluster, each ``tail_i`` a softmax
over its cluster's words: an exact distribution over the vocabulary that sums to 1. Untied, the
layout is PyTorch's ``nn.AdaptiveLogSoftmaxWithLoss`` (no biases; tail i projects the input to
``units // div_value ** (i + 1)`` units first). Tied, every word's output vector is its embedding
row at full width, as awd-lstm-lm's ``splitcross.py`` ties it: the head is the shortlist's rows
plus one vector per cluster token, each tail its words' rows, with a bias per word and cluster
token (the full decoder's); no projection, so ``div_value`` does not apply.

Called, the block gives the full log-probabilities (..., V), for evaluation, prediction and the
cache. ``loss`` is the training path: the head for every row, each tail only for the rows whose
target falls in it, gathered in the graph (rows sorted by cluster, a fixed ``capacity`` of rows
per tail so that the graph's shapes never change; rnnlm.softmax.clusters sizes it).
"""

from rnnlm.mx import gluon, nd
from rnnlm.softmax.clusters import bounds, projections


class AdaptiveSoftmax(gluon.HybridBlock):
    """``block(h (..., units)) -> log p (..., vocab_size)``; ``params``: the embedding's, to tie."""

    def __init__(self, vocab_size, units, cutoffs, div_value, tied, **kwargs):
        super().__init__(**kwargs)
        self.shortlist, self.tails = cutoffs[0], bounds(cutoffs, vocab_size)
        self.tied, self.units = tied, units
        head = self.shortlist + len(self.tails)
        with self.name_scope():
            if tied:  # the embedding's matrix (the params shared), biases as the full decoder's
                self.weight = self.params.get("weight", shape=(vocab_size, units))
                self.bias = self.params.get("bias", shape=(vocab_size,), init="zeros")
                self.cluster_weight = self.params.get("cluster_weight",
                                                      shape=(len(self.tails), units))
                self.cluster_bias = self.params.get("cluster_bias", shape=(len(self.tails),),
                                                    init="zeros")
                return
            self.head_weight = self.params.get("head_weight", shape=(head, units))
            sizes = projections(units, div_value, len(self.tails))
            for i, ((start, end), size) in enumerate(zip(self.tails, sizes, strict=True)):
                setattr(self, f"proj{i}_weight", self.params.get(f"proj{i}_weight",
                                                                 shape=(size, units)))
                setattr(self, f"out{i}_weight", self.params.get(f"out{i}_weight",
                                                                shape=(end - start, size)))

    def hybrid_forward(self, F, x, **params):
        return self.log_probs(F, x, params)

    def _values(self, F, x):
        """The parameters as ``F`` needs them, for ``loss``, called inside another block's graph."""
        if F is nd:
            return {name: p.data(x.context) for name, p in self._reg_params.items()}
        return {name: p.var() for name, p in self._reg_params.items()}

    def head(self, F, x, p):
        """Logits (..., shortlist + clusters) of the head."""
        size = self.shortlist + len(self.tails)
        if not self.tied:
            return F.FullyConnected(x, p["head_weight"], no_bias=True, num_hidden=size,
                                    flatten=False)
        words = F.slice_axis(p["weight"], axis=0, begin=0, end=self.shortlist)
        bias = F.slice_axis(p["bias"], axis=0, begin=0, end=self.shortlist)
        return F.FullyConnected(x, F.concat(words, p["cluster_weight"], dim=0),
                                F.concat(bias, p["cluster_bias"], dim=0), num_hidden=size,
                                flatten=False)

    def tail(self, F, x, i, p):
        """Logits (..., cluster i's words) of tail cluster i."""
        start, end = self.tails[i]
        if self.tied:
            return F.FullyConnected(x, F.slice_axis(p["weight"], axis=0, begin=start, end=end),
                                    F.slice_axis(p["bias"], axis=0, begin=start, end=end),
                                    num_hidden=end - start, flatten=False)
        proj = p[f"proj{i}_weight"]
        low = F.FullyConnected(x, proj, no_bias=True, num_hidden=self.projection(i),
                               flatten=False)
        return F.FullyConnected(low, p[f"out{i}_weight"], no_bias=True, num_hidden=end - start,
                                flatten=False)

    def projection(self, i):
        return getattr(self, f"proj{i}_weight").shape[0]

    def log_probs(self, F, x, p):
        """log p (..., V): the head's shortlist, then each cluster's words plus its token's."""
        head = F.log_softmax(self.head(F, x, p), axis=-1)
        parts = [F.slice_axis(head, axis=-1, begin=0, end=self.shortlist)]
        for i in range(len(self.tails)):
            token = F.slice_axis(head, axis=-1, begin=self.shortlist + i,
                                 end=self.shortlist + i + 1)
            parts.append(F.broadcast_add(F.log_softmax(self.tail(F, x, i, p), axis=-1), token))
        return F.concat(*parts, dim=-1)

    def loss(self, F, x, targets, capacity):
        """-sum log p(target) over x (T, B, units) and targets (T, B), each tail computed for
        ``capacity[i]`` rows: those whose target it holds, padded with masked ones. Exact as long
        as no window has more (rnnlm.softmax.clusters.capacities)."""
        p = self._values(F, x)
        h = F.reshape(x, (-3, 0))  # (N, units), N = T * B
        y = F.cast(F.reshape(targets, (-1,)), "float32")  # (N,): ids are exact in float32
        cluster = sum(y >= start for start, _ in self.tails)  # (N,): 0 head only, i + 1 tail i
        head_target = F.where(cluster == 0, y, cluster + (self.shortlist - 1))
        total = F.pick(F.log_softmax(self.head(F, h, p), axis=-1), head_target, axis=-1).sum()
        order = F.argsort(cluster)  # rows by cluster, so each tail's rows are one run of it
        for i, (start, _) in enumerate(self.tails):
            slots = F.arange(capacity[i])  # (capacity,)
            first, count = (cluster < i + 1).sum(), (cluster == i + 1).sum()  # (1,) each
            rows = F.take(order, F.broadcast_add(slots, first), mode="clip")
            valid = F.broadcast_lesser(slots, count)  # 1 for a real row, 0 for padding
            tail = F.log_softmax(self.tail(F, F.take(h, rows), i, p), axis=-1)
            picked = F.pick(tail, F.take(y, rows) - start, axis=-1, mode="clip")
            total = total + F.where(valid, picked, F.zeros_like(picked)).sum()
        return -total
