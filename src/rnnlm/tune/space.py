"""A tune's search space: experiment key -> distribution. Trial i's value of a key is a pure
function of (tune seed, i, key), so a rerun, a resumed run and every cluster job draw the same
point, and adding a key to the space leaves the other keys' values as they were."""

import math
import zlib

import numpy as np

from rnnlm.config import ConfigError

DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")
DIGITS = 4  # significant digits a drawn number keeps: readable flags, tables and folder names


def check_space(space, key):
    """ConfigError naming ``key``.space.KEY for a distribution the schema cannot refuse."""
    for name, dist in space.items():
        (kind, values), = dist.items()
        at = f"{key}.space.{name}.{kind}"
        if kind == "choice":
            continue
        lo, hi = values
        if not lo < hi:
            raise ConfigError(at, f"lo {lo} must be below hi {hi}")
        if kind == "log_uniform" and lo <= 0:
            raise ConfigError(at, f"lo {lo} must be above 0 for a log-uniform draw; use uniform")


def draw(space, seed, trial):
    """Trial ``trial``'s point (1-based): key -> value."""
    return {name: _draw(dist, np.random.default_rng([seed, trial, zlib.crc32(name.encode())]))
            for name, dist in space.items()}


def _draw(dist, rng):
    (kind, values), = dist.items()
    if kind == "choice":
        return values[int(rng.integers(len(values)))]
    lo, hi = values
    if kind == "int_uniform":
        return int(rng.integers(lo, hi, endpoint=True))
    if kind == "log_uniform":
        return _rounded(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return _rounded(rng.uniform(lo, hi))


def _rounded(value):
    return float(f"{value:.{DIGITS}g}")
