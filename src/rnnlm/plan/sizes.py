"""The refusal, when the config is read, of the arrays MXNet cannot allocate whatever the
vocabulary (rnnlm.limits): a recurrent layer's weights, a window's gates. Refused here, before any
job, because Snakemake deletes a job's old outputs before it runs; what the vocabulary decides is
refused by `rnnlm train` itself, before it allocates anything."""

from rnnlm.limits import model_arrays, too_large, window_arrays
from rnnlm.memory import Shapes, train_window


def oversized(exp, modes):
    """(the setting, the problem) that makes one of a run's arrays too large for MXNet, in any
    of ``modes``, or None."""
    for mode in modes:
        shapes = Shapes.of(mode, 1, exp)  # the vocabulary does not size these
        rows = train_window(exp["bptt"], exp["variable_bptt"])
        array = too_large([*model_arrays(shapes), *window_arrays(shapes, exp["batch_size"], rows)])
        if array:
            setting = max(array.key.split(" or "), key=lambda name: exp[name])  # the outsized
            return setting, f"{exp[setting]} {array.refusal()}"
    return None
