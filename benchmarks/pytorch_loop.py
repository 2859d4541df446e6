"""PyTorch's word_language_model loop, run as a worker that throughput.py drives chunk by chunk.

    PYTHON benchmarks/pytorch_loop.py     (PYTHON: any interpreter with torch and numpy)

What a user would run instead of the pipeline: the PyTorch example's RNNModel (embedding,
dropout, one multi-layer nn.RNN/LSTM/GRU with dropout between its layers, dropout, a Linear
decoder tied or not, log_softmax), NLLLoss, ``clip_grad_norm_``, the example's hand-written SGD
step and ``loss.item()`` every batch. With ``softmax: adaptive`` the decoder and loss are
``nn.AdaptiveLogSoftmaxWithLoss`` (untied only: PyTorch's module has its own weights). Only
the scale of the loss is the pipeline's (summed over the window, averaged over the batch, so
``lr`` and the clip mean what they mean in rnnlm); its cost is the example's. The worker
imports no rnnlm (torch need not live beside mxnet): it reads one JSON request per line on
stdin and answers one JSON line on stdout.

    {"torch": version} or {"missing": why}                      first line, unasked
    setup {model, train, threads, arrays, weights} -> {params, first_loss}
                                                   or {error} (e.g. a weight's shape differs)
    train {n}                                      -> {losses}   n windows, wrapping around
    eval {rows, window}                            -> {loss}     mean token loss, no_grad

and ends at the end of its input. ``setup`` loads the (steps, batch) id arrays from .npy files
and the weights from an .npz of arrays ``p0, p1, ...`` in the order of the model's
``parameters()`` (the same as rnnlm's ``RNNModel.arrays()``); ``first_loss`` is the summed loss of
the first training window from those weights with dropout off, for throughput.py's check that
both models compute the same function.
"""

import json
import resource
import sys

try:
    import numpy as np
    import torch
    from torch import nn
except ImportError as err:
    print(json.dumps({"missing": str(err)}), flush=True)
    sys.exit(0)

RNN_TYPES = {"rnn_relu": (nn.RNN, {"nonlinearity": "relu"}), "rnn_tanh": (nn.RNN, {}),
             "lstm": (nn.LSTM, {}), "gru": (nn.GRU, {})}


class RNNModel(nn.Module):
    """The PyTorch example's model (examples/word_language_model/model.py)."""

    def __init__(self, mode, ntoken, ninp, nhid, nlayers, dropout, tied, softmax="full",
                 cutoffs=(), div_value=4.0):
        super().__init__()
        cls, options = RNN_TYPES[mode]
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = cls(ninp, nhid, nlayers, dropout=dropout, **options)
        self.adaptive = softmax == "adaptive"
        if self.adaptive and tied:
            raise ValueError("nn.AdaptiveLogSoftmaxWithLoss cannot be tied to the embedding")
        if self.adaptive:
            self.decoder = nn.AdaptiveLogSoftmaxWithLoss(nhid, ntoken, list(cutoffs),
                                                         div_value=div_value)
        else:
            self.decoder = nn.Linear(nhid, ntoken)
        if tied:
            self.decoder.weight = self.encoder.weight
        self.mode, self.nhid, self.nlayers, self.ntoken = mode, nhid, nlayers, ntoken

    def forward(self, inputs, hidden, targets):
        """The summed loss of ``targets`` (the example's NLLLoss, summed), and the state."""
        output, hidden = self.rnn(self.drop(self.encoder(inputs)), hidden)
        output = self.drop(output).view(-1, self.nhid)
        if self.adaptive:
            return self.decoder(output, targets).loss * len(targets), hidden  # its mean
        log_probs = nn.functional.log_softmax(self.decoder(output), dim=1)
        return nn.functional.nll_loss(log_probs, targets, reduction="sum"), hidden

    def init_hidden(self, batch):
        zeros = torch.zeros(self.nlayers, batch, self.nhid)
        return (zeros, zeros.clone()) if self.mode == "lstm" else zeros


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


class Loop:
    """The example's ``train()`` and ``evaluate()`` bodies, one window per ``step``."""

    def __init__(self, model, train, lr, max_norm, bptt, valid):
        self.model, self.train, self.valid = model, train, valid
        self.lr, self.bptt, self.batch = lr, bptt, train.shape[1]
        self.max_norm = max_norm / self.batch  # the pipeline caps the summed loss's gradient
        self.starts = range(0, train.shape[0] - 1, bptt)
        self.hidden, self.next = model.init_hidden(self.batch), 0

    def window(self, source, i, length):
        length = min(length, source.shape[0] - 1 - i)
        return source[i:i + length], source[i + 1:i + 1 + length].reshape(-1)

    def steps(self, n):
        self.model.train()
        return [self.step() for _ in range(n)]

    def step(self):
        """One window of the example's train(): forward, backward, clip, SGD, loss.item()."""
        data, targets = self.window(self.train, self.starts[self.next % len(self.starts)],
                                    self.bptt)
        self.next += 1
        self.model.zero_grad()
        self.hidden = repackage_hidden(self.hidden)
        summed, self.hidden = self.model(data, self.hidden, targets)
        loss = summed / self.batch
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm)
        for p in self.model.parameters():
            p.data.add_(p.grad, alpha=-self.lr)
        return loss.item() * self.batch  # the window's summed token loss

    def evaluate(self, rows, window):
        """The example's evaluate(): mean token loss over the valid array's first ``rows``."""
        self.model.eval()
        source, total = self.valid[:rows], 0.0
        hidden = self.model.init_hidden(source.shape[1])
        with torch.no_grad():
            for i in range(0, source.shape[0] - 1, window):
                data, targets = self.window(source, i, window)
                summed, hidden = self.model(data, hidden, targets)
                total += summed.item()
        return total / ((source.shape[0] - 1) * source.shape[1])

    def first_loss(self):
        """The first training window's summed loss from the current weights, dropout off."""
        self.model.eval()
        data, targets = self.window(self.train, 0, self.bptt)
        with torch.no_grad():
            return self.model(data, self.model.init_hidden(self.batch), targets)[0].item()


def setup(request):
    torch.set_num_threads(request["threads"])
    torch.manual_seed(request["train"]["seed"])
    m, t = request["model"], request["train"]
    model = RNNModel(m["mode"], m["vocab_size"], m["emsize"], m["nhid"], m["nlayers"],
                     m["dropout"], m["tied"], m.get("softmax", "full"), m.get("cutoffs", ()),
                     m.get("div_value", 4.0))
    weights = np.load(request["weights"])
    params = list(model.parameters())
    if len(weights.files) != len(params):
        raise ValueError(f"{len(weights.files)} weight arrays for {len(params)} parameters")
    with torch.no_grad():
        for i, p in enumerate(params):
            value = torch.from_numpy(weights[f"p{i}"])
            if value.shape != p.shape:
                raise ValueError(f"weight p{i} is {tuple(value.shape)}, the model's parameter "
                                 f"{tuple(p.shape)}")
            p.copy_(value)
    train, valid = (torch.from_numpy(np.load(request["arrays"][s]).astype(np.int64))
                    for s in ("train", "valid"))
    loop = Loop(model, train, t["lr"], t["max_norm"], t["bptt"], valid)
    return loop, {"params": sum(p.numel() for p in params), "first_loss": loop.first_loss()}


def serve(lines=sys.stdin, out=sys.stdout):
    print(json.dumps({"torch": torch.__version__}), file=out, flush=True)
    loop = None
    for line in lines:
        request = json.loads(line)
        try:
            if request["cmd"] == "setup":
                loop, reply = setup(request)
            elif request["cmd"] == "train":
                reply = {"losses": loop.steps(request["n"])}
            else:
                reply = {"loss": loop.evaluate(request["rows"], request["window"])}
        except (ValueError, KeyError, RuntimeError) as err:  # told to the driver, which stops
            reply = {"error": f"{type(err).__name__}: {err}"}
        reply["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(reply), file=out, flush=True)


if __name__ == "__main__":
    serve()
