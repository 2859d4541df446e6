"""Ways to compute the adaptive softmax's training loss, timed side by side: forward and backward
of the decoder alone on one window's rows, at WikiText-103's vocabulary.

    .venv/bin/python benchmarks/adaptive_paths.py [--vocab 267735] [--threads 1] [--calls 20]

- ``in-graph``: rnnlm's path (AdaptiveSoftmax.loss): rows sorted by cluster inside the compiled
  graph, each tail on a fixed capacity of them;
- ``host``: the same products, each tail's rows and mask computed on the host with numpy per
  window and passed in as arrays;
- ``every row``: each tail on all rows (the capacity of the window's size), no selection;
- ``full distribution``: the (rows, V) log-probabilities built whole, then the targets' picked.

Targets are Zipfian over the vocabulary (throughput.py's --vocab law); one JSON line per path
with its median ms per window and its loss (all four must agree). The capacity is the window's
own count rounded up as a run's would be (the most over many windows).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
from workload import zipf_arrays


class HostRows:
    """The loss with each tail's rows and mask given as inputs, found on the host."""

    def __init__(self, block, capacity):
        from rnnlm.mx import gluon

        self.block, self.capacity = block, capacity

        class Net(gluon.HybridBlock):
            def __init__(net):
                super().__init__()
                net.block = block  # a child: its parameters are the graph's

            def hybrid_forward(net, F, h, y, *rows_and_masks):
                return self.loss(F, h, y, rows_and_masks)

        self.net = Net()
        self.net.hybridize(static_alloc=True, static_shape=True)

    def loss(self, F, h, y, rows_and_masks):
        b = self.block
        p = b._values(F, h)
        cluster = sum(y >= start for start, _ in b.tails)
        head_target = F.where(cluster == 0, y, cluster + (b.shortlist - 1))
        total = F.pick(F.log_softmax(b.head(F, h, p), axis=-1), head_target, axis=-1).sum()
        for i, (start, _) in enumerate(b.tails):
            rows, valid = rows_and_masks[2 * i], rows_and_masks[2 * i + 1]
            tail = F.log_softmax(b.tail(F, F.take(h, rows), i, p), axis=-1)
            picked = F.pick(tail, F.take(y, rows) - start, axis=-1, mode="clip")
            total = total + F.where(valid, picked, F.zeros_like(picked)).sum()
        return -total

    def __call__(self, h, y, y_host):
        from rnnlm.mx import nd

        inputs = []
        for (start, end), cap in zip(self.block.tails, self.capacity, strict=True):
            found = np.flatnonzero((y_host >= start) & (y_host < end))
            rows = np.zeros(cap, dtype=np.float32)
            rows[:len(found)] = found
            inputs += [nd.array(rows), nd.array(np.arange(cap) < len(found), dtype="float32")]
        return self.net(h, y, *inputs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab", type=int, default=267_735)
    p.add_argument("--cutoffs", type=int, nargs="+", default=[20000, 60000])
    p.add_argument("--units", type=int, default=200)
    p.add_argument("--rows", type=int, default=700, help="bptt x batch: 35 x 20")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calls", type=int, default=20)
    args = p.parse_args(argv)
    from rnnlm.cli.args import use_threads

    use_threads(args.threads)
    from rnnlm.mx import autograd, gluon, nd
    from rnnlm.mx import mxnet as mx
    from rnnlm.softmax.adaptive import AdaptiveSoftmax
    from rnnlm.softmax.clusters import capacities

    mx.random.seed(0)
    block = AdaptiveSoftmax(args.vocab, args.units, args.cutoffs, 4.0, tied=False)
    block.initialize(mx.init.Uniform(0.1))
    targets = zipf_arrays(20, 10, args.vocab)["train"][:200].astype(np.float32)  # (200, 20)
    cut = [(s, args.rows // 20) for s in range(0, 199 - args.rows // 20, args.rows // 20)]
    capacity = capacities([targets], args.cutoffs, cut)  # over many windows, as a run's
    y_host = targets[1:1 + args.rows // 20].reshape(-1)  # the first window's
    y = nd.array(y_host)
    h = nd.random.uniform(-1, 1, (args.rows, args.units))
    h.attach_grad()

    class Graph(gluon.HybridBlock):
        def __init__(self, capacity):
            super().__init__()
            self.capacity, self.block = capacity, block

        def hybrid_forward(self, F, h, y):
            if self.capacity is None:
                return -F.pick(self.block(h), y, axis=-1).sum()
            return self.block.loss(F, F.expand_dims(h, 0), F.expand_dims(y, 0), self.capacity)

    paths = {"in-graph": Graph(capacity), "every row": Graph((args.rows,) * len(capacity)),
             "full distribution": Graph(None)}
    for net in paths.values():
        net.hybridize(static_alloc=True, static_shape=True)
    host = HostRows(block, capacity)
    calls = {name: (lambda net=net: net(h, y)) for name, net in paths.items()}
    calls["host"] = lambda: host(h, y, y_host)
    times, losses = {name: [] for name in calls}, {}
    for _ in range(args.calls + 2):  # two warm-up rounds; the paths alternate
        for name, call in calls.items():
            start = time.perf_counter()
            with autograd.record():
                loss = call()
            loss.backward()
            losses[name] = float(loss.asscalar())  # waits for the backward pass too
            nd.waitall()
            times[name].append(time.perf_counter() - start)
    for name in calls:
        print(json.dumps({"path": name, "ms": 1000 * statistics.median(times[name][2:]),
                          "loss": losses[name], "capacity": capacity, "vocab": args.vocab,
                          "rows": args.rows, "threads": args.threads,
                          "load": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
