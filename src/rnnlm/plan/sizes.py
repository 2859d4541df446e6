"""The refusal, when the config is read, of the arrays MXNet cannot allocate whatever the
vocabulary (rnnlm.limits): a recurrent layer's weights, a window's gates. Refused here, before any
job, because Snakemake deletes a job's old outputs before it runs; what the vocabulary decides is
refused by `rnnlm train` itself, before it allocates anything."""

from rnnlm.config import ConfigError
from rnnlm.limits import model_arrays, too_large, window_arrays
from rnnlm.memory import Shapes, train_window


def check_arrays(key, exp, modes):
    """A ConfigError naming ``key``'s setting (``key``: the experiment's, e.g. experiments.big)
    that makes one of a run's arrays too large for MXNet, in any of ``modes``."""
    for mode in modes:
        shapes = Shapes.of(mode, 1, exp)  # the vocabulary does not size these
        rows = train_window(exp["bptt"], exp["variable_bptt"])
        array = too_large([*model_arrays(shapes), *window_arrays(shapes, exp["batch_size"], rows)])
        if array:
            setting = array.key.split(" or ")[0]
            raise ConfigError(f"{key}.{setting}", f"{exp[setting]} {array.refusal()}")
