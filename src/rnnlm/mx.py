"""The one door to MXNet: restore what numpy 2 removed, load the build's CUDA libraries (if it
brought them), then import mxnet.

MXNet 1.9.1 (the last release) binds, at import time, module attributes that numpy 2 dropped.
It declares ``numpy<2`` for that reason alone; with these names back it imports and trains on
numpy 2 (``tests/test_mx.py`` keeps it so). Every other module imports mxnet from here.
"""

import contextlib
import ctypes
import os
import sys
import types
import warnings

import numpy as np

from rnnlm.builds import installed, load_error, preload_cuda_libraries
from rnnlm.io import RnnlmError


def _removed_in_numpy2(name):
    def stub(*args, **kwargs):
        raise NotImplementedError(
            f"numpy.{name} was removed in numpy 2 (financial functions moved to numpy-financial)"
        )

    stub.__name__ = name
    return stub


_RESTORED = {
    "NaN": np.nan,
    "NAN": np.nan,
    "PZERO": 0.0,
    "NZERO": -0.0,
    "PINF": np.inf,
    "NINF": -np.inf,
    "Inf": np.inf,
    "alltrue": np.all,
    "sometrue": np.any,
    "product": np.prod,
    "cumproduct": np.cumprod,
    "round_": np.round,
    "in1d": np.isin,
    "trapz": np.trapezoid,
    "msort": lambda a: np.sort(a, axis=0),
    "compat": types.SimpleNamespace(basestring=str),
    **{f: _removed_in_numpy2(f) for f in ("mirr", "npv", "pmt", "ppmt", "pv", "rate")},
}

for _name, _value in _RESTORED.items():
    if _name not in np.__dict__:
        setattr(np, _name, _value)

# Optional packages mxnet imports for features rnnlm never calls through it: onnx for its exporter
# (rnnlm.export writes its own graphs) and scipy.stats for quantization's calibration. They are
# half of mxnet's import (1.6 against 2.8 CPU seconds here, benchmarks/startup.py), paid by
# every job of the pipeline.
UNUSED_BY_RNNLM = ("onnx", "scipy.stats")


@contextlib.contextmanager
def _hidden(names):
    """Import of ``names`` fails (mxnet then goes without them) while the block runs, and works
    again after it."""
    hidden = [name for name in names if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden, None))
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


# The engine libmxnet starts as it loads, just below (rnnlm.cli chooses it for CPU jobs).
ENGINE = os.environ.get("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice")

BUILD = installed()
preload_cuda_libraries(BUILD)
with warnings.catch_warnings(), _hidden(UNUSED_BY_RNNLM):
    warnings.simplefilter("ignore", DeprecationWarning)  # mxnet imports distutils
    try:
        import mxnet  # noqa: E402  (must follow the restoration above)
    except OSError as err:  # libmxnet.so or a library it links is missing
        raise RnnlmError(load_error(BUILD, err)) from None
from mxnet import autograd, gluon, init, nd  # noqa: E402

# Start the engine now: it logs its start ("MXNet start using engine") where another is chosen,
# and a lazily started one would log that after a stage's one-line error, at exit.
nd.waitall()



def host_view(array):
    """A numpy array on the memory of a float32 CPU NDArray, no copy (MXNet's C API
    MXNDArrayGetData). numpy's elementwise operators run several times faster than MXNet 1.9.1's
    on CPU (rnnlm.adapt.dynamic). The caller waits for MXNet's writes to the array first
    (``nd.waitall()``) and reads or writes it before handing it back to MXNet operators."""
    if array.context.device_type != "cpu" or array.dtype != np.float32:
        raise ValueError(f"host_view needs a float32 CPU array, got {array.dtype} on "
                         f"{array.context}")
    pointer = ctypes.c_void_p()
    mxnet.base.check_call(mxnet.base._LIB.MXNDArrayGetData(array.handle, ctypes.byref(pointer)))
    return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)),
                                 shape=array.shape)


__all__ = ["BUILD", "ENGINE", "mxnet", "autograd", "gluon", "init", "nd", "host_view"]
