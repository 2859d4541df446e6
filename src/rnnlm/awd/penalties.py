"""Activation regularisation (AR) and temporal activation regularisation (TAR), as
awd-lstm-lm's main.py adds them to its loss:

    alpha * mean(dropped ** 2) + beta * mean((raw[1:] - raw[:-1]) ** 2)

on the last layer's output, ``dropped`` after its dropout, ``raw`` before. Its loss is the mean
token loss; ours is the window's sum (rnnlm.step), so the penalty enters multiplied by the
window's tokens and alpha and beta mean what they mean there.
"""


def activation_penalty(F, raw, dropped, tokens, alpha, beta):
    """``tokens`` (the window's T x B, a (1,) array) times AR + TAR of (T, B, H) outputs."""
    penalty = 0
    if alpha:
        penalty = penalty + alpha * F.mean(F.square(dropped))
    if beta:
        steps = F.slice_axis(raw, axis=0, begin=1, end=None) - F.slice_axis(
            raw, axis=0, begin=0, end=-1)
        penalty = penalty + beta * F.mean(F.square(steps))
    return tokens * penalty
