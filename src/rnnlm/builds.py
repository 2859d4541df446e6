"""Which build of MXNet 1.9.1 this environment holds, and what a CUDA build needs to load.

uv.lock offers the CPU build and the CUDA 11.x builds as conflicting extras of pyproject.toml
(`make setup GPU=cu117`); all of them install the module `mxnet`. This module never imports
mxnet: rnnlm.mx asks it first, so that a CUDA build finds the NVIDIA libraries its extra
installed, and a build that cannot load says why in one line instead of a traceback.
"""

import ctypes
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from rnnlm.io import RnnlmError

# Extra of pyproject.toml -> the MXNet distribution it installs (tests/test_builds.py keeps the
# two in step, and the Makefile's BUILDS too).
DISTRIBUTIONS = {
    "cpu": "mxnet",
    "cu110": "mxnet-cu110",
    "cu112": "mxnet-cu112",
    "cu113": "mxnet-cu113",
    "cu114": "mxnet-cu114",
    "cu115": "mxnet-cu115",
    "cu116": "mxnet-cu116",
    "cu117": "mxnet-cu117",
}
SETUP_CPU = "make setup (or uv sync --extra cpu)"
SETUP_GPU = "make setup GPU=cu117 (or uv sync --extra cu117)"

# What mxnet-cu117's libmxnet.so links besides the driver (readelf -d), where NVIDIA's wheels in
# the cu117 extra put it. Loaded first, each is found by its soname without LD_LIBRARY_PATH; their
# own dependencies resolve through their RUNPATH.
NVIDIA_LIBRARIES = (
    "cuda_runtime/lib/libcudart.so.11.0",
    "cublas/lib/libcublasLt.so.11",
    "cublas/lib/libcublas.so.11",
    "cufft/lib/libcufft.so.10",
    "curand/lib/libcurand.so.10",
    "cusparse/lib/libcusparse.so.11",
    "cusolver/lib/libcusolver.so.11",
    "cuda_nvrtc/lib/libnvrtc.so.11.2",
    "nvtx/lib/libnvToolsExt.so.1",
    "cudnn/lib/libcudnn.so.8",
    "nccl/lib/libnccl.so.2",
)


@dataclass(frozen=True)
class Build:
    distribution: str  # "mxnet" or "mxnet-cuXYZ"
    version: str

    @property
    def cuda(self):
        """The CUDA version it was built for ("11.7"), or None for the CPU build."""
        digits = re.fullmatch(r"mxnet-cu(\d+)(\d)", self.distribution)
        return f"{digits[1]}.{digits[2]}" if digits else None

    def __str__(self):
        return f"{self.distribution} {self.version} ({f'CUDA {self.cuda}' if self.cuda else 'CPU'})"


def installed():
    """The MXNet build installed; an error naming the fix when there is none, or two."""
    found = []
    for name in DISTRIBUTIONS.values():
        try:
            found.append(Build(name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            pass
    if not found:
        raise RnnlmError(f"no MXNet build is installed in this environment; install one: "
                         f"{SETUP_CPU} for the CPU, {SETUP_GPU} for a GPU")
    if len(found) > 1:
        names = " and ".join(build.distribution for build in found)
        raise RnnlmError(f"{names} are both installed and overwrite each other's mxnet module; "
                         f"reinstall one build: {SETUP_CPU}, or {SETUP_GPU}")
    return found[0]


def preload_cuda_libraries(build):
    """Load the CUDA libraries that NVIDIA's wheels installed (the cu117 extra), if any.

    The other CUDA builds use the machine's CUDA toolkit, cuDNN and NCCL (LD_LIBRARY_PATH).
    """
    spec = importlib.util.find_spec("nvidia") if build.cuda else None
    if spec is None:
        return
    for folder in spec.submodule_search_locations:
        for library in NVIDIA_LIBRARIES:
            if (Path(folder) / library).is_file():
                ctypes.CDLL(str(Path(folder) / library), mode=ctypes.RTLD_GLOBAL)


def load_error(build, error):
    """The one line for a build whose libmxnet.so does not load (ctypes' OSError)."""
    missing = re.match(r"(\S+): cannot open shared object file", str(error))
    if missing is None:
        return f"{build} does not load ({error}); reinstall it: {SETUP_CPU}, or {SETUP_GPU}"
    library = missing[1]
    if library.startswith("libcuda.so"):
        return (f"{build} does not load: {library}, the NVIDIA driver's library, is missing (no "
                f"GPU driver on this machine; nvidia-smi shows it where there is one); on a "
                f"machine without a GPU install the CPU build: {SETUP_CPU}")
    if build.cuda:
        return (f"{build} does not load: {library} is missing; it needs CUDA {build.cuda}'s "
                f"libraries, cuDNN 8 and NCCL 2 on LD_LIBRARY_PATH (README: GPUs), or install "
                f"the build that brings them: {SETUP_GPU}")
    return f"{build} does not load: {library} is missing; reinstall it: {SETUP_CPU}"
