"""Activation regularisation (AR) and temporal activation regularisation (TAR), as
awd-lstm-lm's main.py adds them to its loss:

    alpha * mean(dropped ** 2) + beta * mean((raw[1:] - raw[:-1]) ** 2)

on the last layer's output, ``dropped`` after its dropout, ``raw`` before. Its loss is the mean
token loss; ours is the window's sum (rnnlm.step), so the penalty enters multiplied by the
window's tokens and alpha and beta mean what they mean there.
"""


def activation_penalty(F, raw, dropped, units, alpha, beta):
    """T x B times AR + TAR of (T, B, ``units``) outputs: the window's share of them.

    Written with the sums of squares as dots of the flattened outputs with themselves (the
    trainer's global norm does the same): T x B x mean(x ** 2) is dot(x, x) / units, and the
    T - 1 step differences' mean is scaled back by T / (T - 1) (TAR's windows have two steps at
    least: TrainConfig.epoch_windows). MXNet's mean and square cost 2% of a 2x200 window where
    the dots cost a tenth of that."""
    penalty = 0
    if alpha:
        flat = F.reshape(dropped, shape=(-1,))
        penalty = penalty + alpha / units * F.dot(flat, flat)
    if beta:
        steps = F.reshape(F.slice_axis(raw, axis=0, begin=1, end=None) - F.slice_axis(
            raw, axis=0, begin=0, end=-1), shape=(-1,))
        length = F.slice_axis(F.shape_array(raw), axis=0, begin=0, end=1).astype("float32")
        penalty = penalty + beta / units * F.dot(steps, steps) * length / (length - 1)
    return penalty
