"""The Mogrifier LSTM (Melis, Kočiský, Blunsom, "Mogrifier LSTM", ICLR 2020): before each LSTM
step the input x and the previous output h gate each other for ``rounds`` rounds,

    round 1, 3, ...:  x <- 2 sigmoid(Q_j h + b_j) * x
    round 2, 4, ...:  h <- 2 sigmoid(R_j x + b_j) * h

then the LSTM step reads the gated x and h; the cell state c is not gated. This follows
deepmind/lamb, lamb/tiled_lstm.py, ``TiledLSTMCell._do_feature_masking``: x first (its even
0-based rounds), the factor 2, a bias per round, and with ``rank`` k > 0 each matrix a product of
two of rank k (lamb/utils.py, ``low_rank_factorization``). With 0 rounds the cell is the LSTM.

Each step's input depends on the previous step's output, so MXNet's fused RNN operator cannot run
it: the layer steps through the window with ``contrib.foreach``, which a hybridized model runs as
one graph (static_alloc; not static_shape: rnnlm.model.RNNModel.static_shape). The LSTM's four
arrays are the `lstm` mode's flat vector (same layout, same initialisation, same weight drop), so
a mogrifier of 0 rounds computes what `lstm` does.
"""

import math

from rnnlm.awd.dropout import drop_connect
from rnnlm.mx import init
from rnnlm.recurrent import RecurrentLayer


def low_rank_init(fan_in, rank):
    """lamb/utils.py ``make_low_rank_factorization_initializer``: each factor's entries of sd
    (1 / (fan_in rank))^(1/4), so their product has a full matrix's variance 1 / fan_in (lamb
    truncates the normal at 2 sd; MXNet's Normal does not)."""
    return init.Normal(math.sqrt(math.sqrt(1.0 / (fan_in * rank))))


class MogrifierLayer(RecurrentLayer):
    """One Mogrifier LSTM layer: the `lstm` mode's flat vector, and per round j a matrix (or two
    factors of rank ``rank``) and a bias: ``mog{j}_weight`` (out, in), or ``mog{j}_left``
    (rank, in) and ``mog{j}_right`` (out, rank), and ``mog{j}_bias`` (out,). Round j gates x
    (out = inputs, in = units) when j is even, h (out = units, in = inputs) when odd."""

    def __init__(self, input_size, nhid, rounds, rank=0, weight_dropout=0.0, **kwargs):
        super().__init__("lstm", input_size, nhid, weight_dropout, **kwargs)
        self.mode, self.input_size, self.rounds, self.rank = "mogrifier", input_size, rounds, rank
        for j in range(rounds):
            out, inp = (input_size, nhid) if j % 2 == 0 else (nhid, input_size)
            if rank:  # lamb: matmul(matmul(y, a), b) with a [in, rank], b [rank, out]
                self.register(f"mog{j}_left", (rank, inp), low_rank_init(inp, rank))
                self.register(f"mog{j}_right", (out, rank), low_rank_init(inp, rank))
            else:  # lamb: utils.linear, the model's initializer
                self.register(f"mog{j}_weight", (out, inp), None)
            self.register(f"mog{j}_bias", (out,), "zeros")

    def register(self, name, shape, fill):
        """A parameter Gluon passes to hybrid_forward: only an attribute's are."""
        setattr(self, name, self.params.get(name, shape=shape, init=fill))

    def round_gate(self, F, j, source, mog):
        """2 sigmoid(M_j source + b_j): round j's gate on the other of x and h."""
        out = self.input_size if j % 2 == 0 else self.nhid
        if self.rank:
            source = F.FullyConnected(source, mog[f"mog{j}_left"], no_bias=True,
                                      num_hidden=self.rank)
            matrix = mog[f"mog{j}_right"]
        else:
            matrix = mog[f"mog{j}_weight"]
        return 2 * F.sigmoid(F.FullyConnected(source, matrix, mog[f"mog{j}_bias"],
                                              num_hidden=out))

    def mogrify(self, F, x, h, mog):
        """x and h after the rounds (lamb's ``_do_feature_masking``)."""
        for j in range(self.rounds):
            if j % 2 == 0:
                x = self.round_gate(F, j, h, mog) * x
            else:
                h = self.round_gate(F, j, x, mog) * h
        return x, h

    def hybrid_forward(self, F, x, states, weight, **mog):
        if self.weight_dropout:  # one mask per window, as the fused layers' (rnnlm.awd)
            weight = drop_connect(F, weight, self.span("h2h_weight"), self.weight_dropout,
                                  self.size)
        piece = {name: F.slice(weight, begin=(start,), end=(end,)).reshape(self.shapes[name])
                 for name, (start, end) in ((n, self.span(n)) for n in self.shapes)}
        gates = 4 * self.nhid
        # One product of [x, h] with [W_ih, W_hh] per step, and one bias, joined once per window
        both = F.concat(piece["i2h_weight"], piece["h2h_weight"], dim=1)
        bias = piece["i2h_bias"] + piece["h2h_bias"]

        def step(x_t, carried):
            h, c = carried
            x_t, h = self.mogrify(F, x_t, h, mog)
            z = F.FullyConnected(F.concat(x_t, h, dim=1), both, bias, num_hidden=gates)
            i, f, g, o = F.split(z, num_outputs=4, axis=1)  # MXNet's LSTM order: i, f, c, o
            c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
            h = F.sigmoid(o) * F.tanh(c)
            return h, [h, c]

        h0, c0 = (F.squeeze(s, axis=0) for s in states)  # (1, B, nhid) -> (B, nhid)
        out, (h, c) = F.contrib.foreach(step, x, [h0, c0])
        return out, [h.expand_dims(0), c.expand_dims(0)]
