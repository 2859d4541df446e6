"""MXNet's builds as locked extras: one build per extra in uv.lock, make's GPU= picks it, the job
log names it, and a build that cannot serve the job says which command fixes it. No GPU needed:
the lock and `uv sync --dry-run` only read metadata, and a CUDA build is stood in for."""

import base64
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO, rnnlm

from rnnlm.builds import DISTRIBUTIONS, Build
from rnnlm.device import NO_GPU
from rnnlm.mx import BUILD
from rnnlm.mx import mxnet as mx

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCK = tomllib.loads((REPO / "uv.lock").read_text())
EXPORT = "export"  # onnx and onnxruntime, installed beside whichever build (rnnlm.export)
EXTRAS = sorted(set(PYPROJECT["project"]["optional-dependencies"]) - {EXPORT})  # the builds
UV = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")  # where the Makefile finds it


def locked(name):
    return next(p for p in LOCK["package"] if p["name"] == name)


def mxnet_builds(requirements):
    return [r["name"] for r in requirements if r["name"].split("-")[0] == "mxnet"]


# --- the lock -----------------------------------------------------------------------------------


def test_each_extra_locks_exactly_one_mxnet_build():
    assert EXTRAS == sorted(DISTRIBUTIONS)
    extras = locked("rnnlm")["optional-dependencies"]
    assert sorted(extras) == sorted([*EXTRAS, EXPORT])
    assert sorted(r["name"] for r in extras[EXPORT]) == ["onnx", "onnxruntime"]
    for extra in EXTRAS:
        assert mxnet_builds(extras[extra]) == [DISTRIBUTIONS[extra]], extra
        assert locked(DISTRIBUTIONS[extra])["version"] == "1.9.1"
    assert mxnet_builds(locked("rnnlm")["dependencies"]) == []  # no build outside the extras


def test_the_extras_exclude_each_other():
    declared = PYPROJECT["tool"]["uv"]["conflicts"]
    assert [sorted(item["extra"] for item in group) for group in declared] == [EXTRAS]
    assert [sorted(item["extra"] for item in group) for group in LOCK["conflicts"]] == [EXTRAS]


def uv_sync_dry_run(tmp_path, *extras):
    if not os.path.exists(UV):
        pytest.skip("no uv on PATH or in .tools/ (make setup installs it)")
    argv = [UV, "sync", "--locked", "--offline", "--dry-run", "--no-progress"]
    for extra in extras:
        argv += ["--extra", extra]
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}  # a fresh clone's
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("extra", EXTRAS)
def test_uv_installs_one_build_per_extra(tmp_path, extra):
    result = uv_sync_dry_run(tmp_path, extra)
    assert result.returncode == 0, result.stderr
    plan = result.stdout + result.stderr
    installs = [line.split()[1] for line in plan.splitlines() if line.startswith(" + mxnet")]
    assert installs == [f"{DISTRIBUTIONS[extra]}==1.9.1"]


def test_uv_refuses_two_builds_at_once(tmp_path):
    result = uv_sync_dry_run(tmp_path, "cpu", "cu117")
    assert result.returncode != 0
    assert "are incompatible with the declared conflicts" in result.stderr


# --- make ---------------------------------------------------------------------------------------


def make_dry_run(*argv):
    env = {k: v for k, v in os.environ.items() if k not in ("GPU", "ARGS", "MAKEFLAGS")}
    return subprocess.run(["make", "-n", "--no-print-directory", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("argv", "extra"), [(["run"], "cpu"), (["test"], "cpu"),
                                             (["setup", "GPU=cu112"], "cu112"),
                                             (["run", "GPU=cu117", "ARGS=-n"], "cu117")])
def test_make_installs_the_build_gpu_names(argv, extra):
    result = make_dry_run(*argv)
    assert result.returncode == 0, result.stderr
    syncs = [line for line in result.stdout.splitlines() if " sync " in line]
    assert [line.split(" sync ", 1)[1] for line in syncs] == [
        f"--locked --compile-bytecode --extra {extra} --extra {EXPORT}"]
    if argv[0] == "run":
        assert result.stdout.splitlines()[-1].startswith(".venv/bin/snakemake --cores all")


def test_make_refuses_a_build_the_lock_does_not_have():
    result = make_dry_run("run", "GPU=cu118")
    assert result.returncode == 2
    cuda = " ".join(extra for extra in EXTRAS if extra != "cpu")
    assert (f"GPU=cu118 is not a build in uv.lock; use one of {cuda}, or no GPU= for the CPU "
            "build") in result.stderr


# --- the installed build ------------------------------------------------------------------------


def test_the_installed_build_is_whole_and_the_one_mxnet_loaded():
    """Every file of the build's RECORD is there with its hash: no other build overwrote any."""
    files = [f for f in importlib.metadata.distribution(BUILD.distribution).files if f.hash]
    assert any(f.name == "libmxnet.so" for f in files)
    for file in files:
        digest = hashlib.new(file.hash.mode, file.locate().read_bytes()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == file.hash.value, file
    assert mx.runtime.Features().is_enabled("CUDA") == (BUILD.cuda is not None)


def test_build_names_its_cuda_version():
    assert str(Build("mxnet", "1.9.1")) == "mxnet 1.9.1 (CPU)"
    assert str(Build("mxnet-cu117", "1.9.1")) == "mxnet-cu117 1.9.1 (CUDA 11.7)"
    assert Build("mxnet-cu110", "1.9.1").cuda == "11.0"


# --- what a job says ----------------------------------------------------------------------------


def train_on_gpu(tmp_path, **env):
    """`rnnlm train --device gpu`: the device check comes before any array is read."""
    vocab = tmp_path / "vocab.tsv"
    vocab.write_text("id\tword\tcount\n0\ta\t2\n1\tb\t1\n2\t<eos>\t1\n")
    return rnnlm("train", "--mode", "lstm", "--vocab", vocab, "--train", tmp_path / "t.npy",
                 "--valid", tmp_path / "v.npy", "--out-dir", tmp_path / "run", "--device", "gpu",
                 env={**os.environ, "PYTHONWARNINGS": "ignore", **env})


def test_a_job_logs_its_build_and_the_cpu_build_names_the_gpu_install(tmp_path):
    if BUILD.cuda:
        pytest.skip(f"{BUILD} is installed")
    result = train_on_gpu(tmp_path)
    assert result.returncode == 1
    assert "MXNet build: mxnet 1.9.1 (CPU); GPUs it sees: 0" in result.stderr
    assert result.stderr.splitlines()[-1] == f"rnnlm train: error: {NO_GPU}"
    assert "make setup GPU=cu117 (or uv sync --extra cu117)" in NO_GPU


# Stands in for an installed CUDA build on this machine: metadata says which distributions are
# installed, and loading libmxnet.so fails as it does without the library named.
FAKE_BUILDS = """
import ctypes, importlib.metadata
real_version, real_init = importlib.metadata.version, ctypes.CDLL.__init__
def version(name):
    if name.startswith("mxnet"):
        if name in {installed}:
            return "1.9.1"
        raise importlib.metadata.PackageNotFoundError(name)
    return real_version(name)
def init(self, name, *args, **kwargs):
    if str(name).endswith("libmxnet.so"):
        raise OSError("{missing}: cannot open shared object file: No such file or directory")
    real_init(self, name, *args, **kwargs)
importlib.metadata.version, ctypes.CDLL.__init__ = version, init
"""


def train_with(tmp_path, installed, missing):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAKE_BUILDS.format(installed=installed,
                                                                 missing=missing))
    return train_on_gpu(tmp_path, PYTHONPATH=str(site))


@pytest.mark.parametrize(("installed", "missing", "error"), [
    (["mxnet-cu117"], "libcuda.so.1",
     "mxnet-cu117 1.9.1 (CUDA 11.7) does not load: libcuda.so.1, the NVIDIA driver's library, "
     "is missing (no GPU driver on this machine; nvidia-smi shows it where there is one); on a "
     "machine without a GPU install the CPU build: make setup (or uv sync --extra cpu)"),
    (["mxnet-cu112"], "libcudnn.so.8",
     "mxnet-cu112 1.9.1 (CUDA 11.2) does not load: libcudnn.so.8 is missing; it needs CUDA "
     "11.2's libraries, cuDNN 8 and NCCL 2 on LD_LIBRARY_PATH (README: GPUs), or install the "
     "build that brings them: make setup GPU=cu117 (or uv sync --extra cu117)"),
    (["mxnet", "mxnet-cu112"], "-",
     "mxnet and mxnet-cu112 are both installed and overwrite each other's mxnet module; "
     "reinstall one build: make setup (or uv sync --extra cpu), or make setup GPU=cu117 (or uv "
     "sync --extra cu117)"),
    ([], "-",
     "no MXNet build is installed in this environment; install one: make setup (or uv sync "
     "--extra cpu) for the CPU, make setup GPU=cu117 (or uv sync --extra cu117) for a GPU"),
])
def test_a_build_that_cannot_load_says_which_command_fixes_it(tmp_path, installed, missing,
                                                               error):
    result = train_with(tmp_path, installed, missing)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"rnnlm train: error: {error}"]


PRELOAD = """
import sys
from rnnlm.builds import Build, preload_cuda_libraries
preload_cuda_libraries(Build(sys.argv[1], "1.9.1"))
print(open("/proc/self/maps").read())
"""


@pytest.mark.parametrize(("distribution", "loads"), [("mxnet-cu117", True), ("mxnet", False)])
def test_a_cuda_build_loads_the_libraries_its_extra_installed(tmp_path, distribution, loads):
    """NVIDIA's wheels put them in the namespace package `nvidia`; a stand-in library there."""
    lib = tmp_path / "site" / "nvidia" / "cublas" / "lib" / "libcublas.so.11"
    lib.parent.mkdir(parents=True)
    shutil.copy(Path(mx.libinfo.find_lib_path()[0]).with_name("libgfortran.so.3"), lib)
    result = subprocess.run([sys.executable, "-c", PRELOAD, distribution], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stderr
    assert (str(lib) in result.stdout) == loads
