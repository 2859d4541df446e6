"""What produced a result: the package code a stage runs, the pipeline's commit, the library
versions and the machine, so that a number in a table can be traced and repeated.

``code_digest`` is also the workflow's way to see code changes: Snakemake does not look inside an
imported package, so the rules carry the digest of the code each stage runs as a param, and a
change reruns exactly the jobs that run it and what follows them.
"""

import ast
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import rnnlm

PACKAGE = Path(__file__).resolve().parent
LIBRARIES = ("mxnet", "numpy", "snakemake")


def package_imports(path):
    """Names of the rnnlm modules that the module at ``path`` imports, at the top or lazily."""
    names = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            top, _, sub = module.partition(".")
            if top == "rnnlm":
                names.add(sub.partition(".")[0] or "__init__")
    return names


def _sources(package, name):
    """{label: path} of module ``name``: ``name.py``, or each module of subpackage ``name``."""
    path = package / f"{name}.py"
    if path.is_file():
        return {name: path}
    return {f"{name}/{p.name}": p for p in sorted((package / name).glob("*.py"))}


def code_files(stage, package=PACKAGE):
    """{label: path} of the code stage module (or subpackage) ``stage`` runs: it and every rnnlm
    module it imports, directly or not."""
    package = Path(package)
    todo, seen, files = [stage], set(), {}
    while todo:
        name = todo.pop()
        sources = _sources(package, name)
        if name in seen or not sources:
            continue
        seen.add(name)
        files.update(sources)
        todo.extend(n for path in sources.values() for n in package_imports(path))
    return files


def code_digest(stage, package=PACKAGE):
    """Digest of ``code_files(stage)``: a change to any of them changes it."""
    files = code_files(stage, package)
    digest = hashlib.sha256()
    for label in sorted(files):
        digest.update(f"{label}\0".encode() + files[label].read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def settings_digest(settings):
    """A digest of a run's resolved settings: the same digest, the same settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def git_commit(folder=PACKAGE):
    """(commit, dirty) of the repository holding ``folder``; (None, None) outside one."""
    if shutil.which("git") is None:
        return None, None
    run = lambda *args: subprocess.run(["git", "-C", str(folder), *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=30)
    head = run("rev-parse", "HEAD")
    if head.returncode != 0:
        return None, None
    return head.stdout.strip(), bool(run("status", "--porcelain", "--untracked-files=no").stdout)


def version(module):
    """Installed version of the distribution that provides ``module`` (mxnet may come as
    mxnet-cu117 and the like), or None."""
    for dist in importlib.metadata.packages_distributions().get(module, [module]):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names():
    """Names of the GPUs the driver lists (nvidia-smi), [] where there is none."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if (
        out.returncode == 0) else []


def now():
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def environment():
    """Where and with what a job runs: versions, commit, machine."""
    commit, dirty = git_commit()
    return {"python": platform.python_version(), "rnnlm": rnnlm.__version__,
            **{name: version(name) for name in LIBRARIES}, "git_commit": commit,
            "git_dirty": dirty, "host": platform.node(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "gpus": gpu_names()}
