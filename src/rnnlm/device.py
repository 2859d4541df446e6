"""Where the work runs: MXNet contexts, CPU threads, and arrays split across devices.

Shared by the train and evaluate stages. A GPU request that MXNet cannot serve fails here with
the fix, before any data is read.
"""

import ctypes
import logging

import numpy as np

from rnnlm.io import RnnlmError
from rnnlm.mx import gluon, nd
from rnnlm.mx import mxnet as mx

log = logging.getLogger(__name__)

NO_GPU = ("--device gpu, but MXNet sees no GPU (a CPU-only mxnet build, or no working CUDA "
          "driver); run with --device cpu, or install a CUDA build of MXNet (e.g. mxnet-cu112) "
          "on a machine whose GPU driver works")


def contexts(device, gpus=1):
    """MXNet contexts for ``device`` ("cpu", or "gpu" with ``gpus`` of them)."""
    if device == "cpu":
        return [mx.cpu()]
    if device != "gpu" or gpus < 1:
        raise RnnlmError(f"device {device!r} with {gpus} GPUs; use --device cpu, or --device gpu "
                         "with --gpus 1 or more")
    try:
        visible = mx.context.num_gpus()
    except mx.base.MXNetError:  # a CUDA build whose driver is missing or broken
        visible = 0
    if visible == 0:
        raise RnnlmError(NO_GPU)
    if gpus > visible:
        raise RnnlmError(f"--gpus {gpus}, but MXNet sees only {visible} GPU(s); use --gpus "
                         f"{visible} or fewer")
    return [mx.gpu(i) for i in range(gpus)]


def omp_threads():
    """OpenMP threads MXNet's CPU operators use, or None where that cannot be read.

    MXNet fixes them when libmxnet loads (from OMP_NUM_THREADS, which the CLI sets before any
    stage module imports mxnet) and leaves the loading thread's OpenMP default at that count,
    so this reads what the operators really get, also when mxnet was loaded earlier.
    """
    try:
        return int(ctypes.CDLL("libgomp.so.1").omp_get_max_threads())
    except (OSError, AttributeError):
        return None


def load_array(path, vocab_size, ctxs):
    """A batchified (steps, B) id array as float32, its columns split across ``ctxs``.

    Every window of a column then lives on one device, with its hidden state: splitting the
    array once splits each batch the same way as gluon.utils.split_and_load per batch would.
    """
    try:
        arr = np.load(path)
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the batchify stage first") from None
    except ValueError as err:
        raise RnnlmError(f"{path}: not a .npy array ({err}); rerun the batchify stage") from None
    if arr.ndim != 2 or arr.dtype.kind not in "iu" or arr.shape[0] < 2:
        raise RnnlmError(f"{path}: expected integer ids of shape (steps >= 2, batch), got "
                         f"{arr.dtype} {arr.shape}; rerun the batchify stage")
    if arr.shape[1] < len(ctxs):
        raise RnnlmError(f"{path}: {arr.shape[1]} columns cannot be split across {len(ctxs)} "
                         "devices; use a larger batch size or fewer --gpus")
    if arr.min() < 0 or arr.max() >= vocab_size:
        raise RnnlmError(f"{path}: ids reach {arr.max()} but the vocabulary has {vocab_size} "
                         "words; batchify with the same vocabulary")
    data = nd.array(arr, dtype="float32")  # ids < 2**24 are exact
    return gluon.utils.split_and_load(data, ctxs, batch_axis=1, even_split=False)


def check_threads(requested):
    """Log the CPU threads MXNet really uses; warn when --threads came too late to count.

    Also starts MXNet's engine, which logs its name when it starts: now, not at exit after a
    stage's one-line error when no operator ran before it."""
    nd.waitall()
    used = omp_threads()
    if requested and used is not None and used != requested:
        log.warning("MXNet runs %d CPU threads, not the %d asked for: mxnet was loaded in this "
                    "process before the count was set", used, requested)
    else:
        log.info("MXNet CPU threads: %s", used)
    return used
