"""The MXNet Gluon tutorial's training loop: the trainer's speed and correctness reference.

Written in the word-language-model tutorial's style on purpose: an imperative Block, the Gluon
loss per row, ``L.backward()``, ``gluon.utils.clip_global_norm`` (a host sync), ``trainer.step``
and ``asscalar`` every batch. The one departure, by default: each recurrent layer is its own
one-layer block with dropout between them, as in rnnlm.recurrent (the tutorial's fused multi-layer
block skips that dropout on the CPU), so that from the same weights both compute the same
function. ``fused=True`` builds the tutorial's own block instead, to time the tutorial itself
(the same function only at dropout 0).
"""

from rnnlm.model import LAYERS
from rnnlm.mx import autograd, gluon


class TutorialModel(gluon.Block):
    """The tutorial's RNNModel: embedding, dropout, recurrent layers, dropout, dense decoder."""

    def __init__(self, config, fused=False, **kwargs):
        super().__init__(**kwargs)
        c, (cls, options) = config, LAYERS[config.mode]
        self.nhid = c.nhid
        with self.name_scope():
            self.drop = gluon.nn.Dropout(c.dropout)
            self.encoder = gluon.nn.Embedding(c.vocab_size, c.emsize)
            self.rnns = gluon.nn.Sequential()  # a container only; forward walks it by hand
            if fused:  # one block of nlayers, dropout between them asked for (and lost on CPU)
                self.rnns.add(getattr(gluon.rnn, cls)(c.nhid, c.nlayers, dropout=c.dropout,
                                                      input_size=c.emsize, **options))
            for i in range(0 if fused else c.nlayers):
                self.rnns.add(getattr(gluon.rnn, cls)(
                    c.nhid, input_size=c.emsize if i == 0 else c.nhid, **options))
            shared = self.encoder.params if c.tied else None
            self.decoder = gluon.nn.Dense(c.vocab_size, in_units=c.nhid, params=shared)

    def begin_state(self, batch_size, ctx):
        return [layer.begin_state(batch_size, ctx=ctx) for layer in self.rnns]

    def forward(self, inputs, hidden):
        output = self.drop(self.encoder(inputs))
        new_hidden = []
        for i, (layer, h) in enumerate(zip(self.rnns, hidden, strict=True)):
            output, h = layer(self.drop(output) if i else output, h)
            new_hidden.append(h)
        output = self.drop(output)
        return self.decoder(output.reshape((-1, self.nhid))), new_hidden


def copy_weights(source, target):
    """Give ``target`` the values of ``source`` (an rnnlm RNNModel), array by array in the order of
    ``source.arrays()``, the same as Gluon's layers hold them."""
    pairs = zip(source.arrays().items(), target.collect_params().values(), strict=True)
    for (name, ours), theirs in pairs:
        if ours.shape != theirs.shape:
            raise ValueError(f"{name} {ours.shape} != {theirs.name} {theirs.shape}")
        theirs.set_data(ours)


class ReferenceLoop:
    """The tutorial's ``train()`` body, one ``step`` per window; clipped to ``max_norm``
    (the tutorial's ``clip * bptt * batch_size``)."""

    def __init__(self, model, data, lr, max_norm, ctx):
        self.model, self.data, self.max_norm, self.ctx = model, data, max_norm, ctx
        self.batch_size = data.shape[1]
        self.trainer = gluon.Trainer(model.collect_params(), "sgd",
                                     {"learning_rate": lr, "momentum": 0, "wd": 0})
        self.loss = gluon.loss.SoftmaxCrossEntropyLoss()
        self.hidden = model.begin_state(self.batch_size, ctx)

    def step(self, i, bptt):
        """Train on rows i .. i + bptt (targets one row down); the window's summed loss."""
        seq_len = min(bptt, self.data.shape[0] - 1 - i)
        data, target = self.data[i:i + seq_len], self.data[i + 1:i + 1 + seq_len].reshape((-1,))
        self.hidden = [[h.detach() for h in layer] for layer in self.hidden]
        with autograd.record():
            output, self.hidden = self.model(data, self.hidden)
            L = self.loss(output, target)  # noqa: N806 (the tutorial's name)
            L.backward()
        grads = [p.grad(self.ctx) for p in self.model.collect_params().values()]
        gluon.utils.clip_global_norm(grads, self.max_norm)
        self.trainer.step(self.batch_size)
        return L.sum().asscalar()
