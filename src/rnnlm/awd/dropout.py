"""Dropout whose mask is drawn once per window: over time (locked), over the vocabulary's rows
(embedding) and over the recurrent weights (DropConnect). MXNet's Dropout is the identity
outside ``autograd.record()`` (predict mode), so each is too."""

from rnnlm.mx import gluon


def locked_dropout(rate):
    """One mask per window shared by its time steps (axis 0 of (T, B, H)): AWD's LockedDropout,
    GluonNLP's ``nn.Dropout(rate, axes=(0,))``."""
    return gluon.nn.Dropout(rate, axes=(0,))


class EmbeddingDropout(gluon.HybridBlock):
    """Whole words dropped for a window: ``ids (T, B) -> (T, B, 1)`` factors, 0 for a dropped
    word's every occurrence and 1 / (1 - rate) for the rest (awd-lstm-lm's embedded_dropout,
    which masks the embedding matrix's rows; here only the rows read are multiplied, so an
    untied embedding's gradient stays row_sparse)."""

    def __init__(self, rate, vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.vocab_size = rate, vocab_size

    def hybrid_forward(self, F, ids):
        rows = F.Dropout(F.ones(shape=(self.vocab_size, 1)), p=self.rate)
        return F.Embedding(ids, rows, input_dim=self.vocab_size, output_dim=1)


def drop_connect(F, flat, span, rate, size):
    """``flat`` (of ``size`` numbers) with DropConnect on its slice ``span`` (start, end):
    awd-lstm-lm's WeightDrop on a layer's hidden-to-hidden matrix, every gate block, one mask
    per call (a window).

    One product with a mask of ones around the dropped span: its gradient is one product too,
    where slicing the vector and joining it again cost three full-size gradients and their sum
    (8% of a 2x200 window)."""
    start, end = span
    mask = F.concat(F.ones(shape=(start,)), F.Dropout(F.ones(shape=(end - start,)), p=rate),
                    F.ones(shape=(size - end,)), dim=0)
    return flat * mask
