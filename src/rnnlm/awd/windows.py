"""awd-lstm-lm's variable windows: each window's length is drawn as

    base = bptt, or bptt / 2 with probability 0.05;  length = max(5, int(N(base, 5)))

so that every token starts a window in some epoch. Its step scales lr by length / bptt to keep
the step per token the same; rnnlm's step already sums the window's token losses (rnnlm.step),
which is that scaling. Drawn from (seed, epoch) alone, so a resumed epoch cuts the same windows.
"""

import numpy as np

MIN_LENGTH = 5
SD = 5
HALF_PROBABILITY = 0.05


def variable_windows(steps, bptt, seed, epoch):
    """(start, length) of each window of an epoch over an array of ``steps`` rows."""
    rng = np.random.default_rng([seed, epoch])
    out, start = [], 0
    while start < steps - 2:  # main.py: while i < train_data.size(0) - 1 - 1
        base = bptt if rng.random() < 1 - HALF_PROBABILITY else bptt / 2
        length = max(MIN_LENGTH, int(rng.normal(base, SD)))
        length = min(length, steps - 1 - start)  # get_batch: the targets end with the array
        out.append((start, length))
        start += length
    return out
