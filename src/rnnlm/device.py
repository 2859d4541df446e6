"""Where the work runs: MXNet contexts, CPU threads, and arrays split across devices.

Shared by the train and evaluate stages. Each job logs here which MXNet build it runs and the
GPUs that build sees; a GPU request that MXNet cannot serve fails here with the fix, before any
data is read.
"""

import ctypes
import logging

import numpy as np

from rnnlm.builds import SETUP_GPU
from rnnlm.io import Damaged, RnnlmError, damage, digest_record
from rnnlm.mx import BUILD, gluon, nd
from rnnlm.mx import mxnet as mx

log = logging.getLogger(__name__)

NO_GPU = ("--device gpu, but MXNet sees no GPU: this is its CPU build; install a CUDA build "
          f"with {SETUP_GPU}, see the README's GPU section, or run with --device cpu")


def no_gpu(build):
    """Why a build sees no GPU, and the fix."""
    if build.cuda is None:
        return NO_GPU
    return (f"--device gpu, but MXNet sees no GPU: {build} is installed, so the NVIDIA driver is "
            f"missing, too old or hides them; nvidia-smi must list a GPU and a CUDA Version of "
            f"{build.cuda} or newer (check CUDA_VISIBLE_DEVICES too), or run with --device cpu")


def visible_gpus():
    """GPUs MXNet can use: 0 on the CPU build, or on a CUDA build without a working driver."""
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:
        return 0


def contexts(device, gpus=1):
    """MXNet contexts for ``device`` ("cpu", or "gpu" with ``gpus`` of them)."""
    visible = visible_gpus()
    log.info("MXNet build: %s; GPUs it sees: %d", BUILD, visible)
    if device == "cpu":
        return [mx.cpu()]
    if device != "gpu" or gpus < 1:
        raise RnnlmError(f"device {device!r} with {gpus} GPUs; use --device cpu, or --device gpu "
                         "with --gpus 1 or more")
    if visible == 0:
        raise RnnlmError(no_gpu(BUILD))
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
    check_array_digest(path)
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


def check_array_digest(path):
    """The array must have the SHA-256 batchify recorded beside it (none beside an array
    batchified before rnnlm recorded it: it reads unchecked)."""
    record = digest_record(path)
    if record.is_file():
        problem = damage(path, record.read_text().split()[0], record.name)
        if problem:
            raise Damaged(f"{problem}: delete it and run snakemake again to batchify it anew "
                          "(what reads it then reruns too)")


def check_threads(requested):
    """Log the CPU threads MXNet really uses; warn when --threads came too late to count."""
    used = omp_threads()
    if requested and used is not None and used != requested:
        log.warning("MXNet runs %d CPU threads, not the %d asked for: mxnet was loaded in this "
                    "process before the count was set", used, requested)
    else:
        log.info("MXNet CPU threads: %s", used)
    return used
