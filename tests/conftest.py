"""Fixtures shared by the test modules: the real PTB copy beside the repo, and small corpora."""

import contextlib
import functools
import hashlib
import http.server
import importlib.util
import os
import random
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core (pyproject.toml): MXNet in a worker's own process takes one core, as the
    # pipeline's jobs do at `threads: 1`; two workers of two OpenMP threads each oversubscribe.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_PTB = REPO.parent / "shared" / "data" / "ptb"
SPLITS = ("train", "valid", "test")
RNNLM = Path(sys.executable).with_name("rnnlm")  # the console script of this environment


def shared_fixtures(item):
    """The fixtures wider than a test that it uses, defined in a test module or a conftest below
    this one (not pytest's, not the cheap session-wide ones here): tests that share one are
    grouped on one worker, so that it is built once."""
    names = set()
    for name in item.fixturenames:
        for fixturedef in item._fixtureinfo.name2fixturedefs.get(name, ()):
            if fixturedef.scope != "function" and fixturedef.baseid.startswith("tests/"):
                names.add(f"{fixturedef.baseid}::{name}")
    return sorted(names)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Groups for pytest-xdist's loadgroup (pyproject.toml): a test without an `xdist_group` of
    its own goes with the tests that share its fixtures (a finished workflow, a trained run), and
    one that shares none is a group of its own. Groups holding an end-to-end (slow) test come
    first, so that the two workers start on the long ones and end on the quick ones."""
    for item in items:
        if not item.get_closest_marker("xdist_group") and (shared := shared_fixtures(item)):
            item.add_marker(pytest.mark.xdist_group("+".join(shared)))
    group = {item: mark.args[0] if (mark := item.get_closest_marker("xdist_group")) else item.nodeid
             for item in items}
    slow = {group[item] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: group[item] not in slow)  # stable: collection order within


def pytest_collection_finish(session):
    """pytest-xdist's loadgroup passes a test's group in its node id; where a pytest release stops
    that (pytest-dev/pytest-xdist#1386), the groups fall apart without a word: say so instead."""
    if session.config.getoption("loadgroup", False):
        for item in session.items:
            if (mark := item.get_closest_marker("xdist_group")) and not item.nodeid.endswith(
                    f"@{mark.args[0]}"):
                raise pytest.UsageError(f"pytest-xdist's loadgroup lost the group of {item.nodeid}"
                                        ": pin a pytest it works with (pyproject.toml)")


def rnnlm(*argv, **kwargs):
    """Run the `rnnlm` command as a user does; its exit code, stdout and stderr."""
    return subprocess.run([str(RNNLM), *map(str, argv)], capture_output=True, text=True,
                          timeout=600, **kwargs)


@functools.cache
def torch_python():
    """A Python with torch, or None: this interpreter, else $RNNLM_TORCH_PYTHON, else ../torchenv
    beside the repository (a CPU-only torch: benchmarks/README.md). Asked once: each answer
    starts a Python that imports torch."""
    if importlib.util.find_spec("torch"):
        return sys.executable
    for candidate in (os.environ.get("RNNLM_TORCH_PYTHON"),
                      REPO.parent / "torchenv" / "bin" / "python"):
        if candidate and Path(candidate).is_file() and subprocess.run(
                [str(candidate), "-c", "import torch"], capture_output=True).returncode == 0:
            return str(candidate)
    return None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without a log line per request in the test's output."""

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server(folder, handler=QuietHandler):
    """``folder`` served over http:// on 127.0.0.1 while the block runs; yields the server."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def unreachable_url():
    """An http:// mirror on a loopback port nobody listens on: offline, as fast as it gets."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/ptb"


@pytest.fixture
def shared_ptb():
    """The verified PTB copy at ../shared/data/ptb (present in CI); skip where it is absent."""
    if not all((SHARED_PTB / f"ptb.{s}.txt").is_file() for s in SPLITS):
        pytest.skip(f"no PTB copy at {SHARED_PTB}")
    return SHARED_PTB


def write_corpus(folder, lines_per_split=(200, 40, 40), seed=0, words=20):
    """A PTB-like corpus (leading space, trailing ' \\n', <unk>) and its sha256 per split."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(words - 1)] + ["<unk>"]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digests = {}
    for split, n in zip(SPLITS, lines_per_split, strict=True):
        lines = [" " + " ".join(rng.choices(vocab, k=rng.randint(3, 12))) + " \n" for _ in range(n)]
        path = folder / f"ptb.{split}.txt"
        path.write_text("".join(lines))
        digests[split] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@pytest.fixture
def corpus(tmp_path):
    """A generated mirror folder and its digests."""
    mirror = tmp_path / "mirror"
    return mirror, write_corpus(mirror)


@pytest.fixture(scope="session")
def tiny_mirror(tmp_path_factory):
    """A generated mirror shared by a session's pipeline runs (never modified), and its digests."""
    mirror = tmp_path_factory.mktemp("tiny_mirror")
    return mirror, write_corpus(mirror, lines_per_split=(300, 60, 60))


PTB_SUBSET = {"train": 3000, "valid": 150, "test": 150}  # the first lines of each split


@pytest.fixture
def ptb_subset(shared_ptb, tmp_path):
    """A mirror of the first PTB_SUBSET of the shared PTB copy, and its digests."""
    mirror, digests = tmp_path / "ptb_subset", {}
    mirror.mkdir()
    for split, n in PTB_SUBSET.items():
        lines = (shared_ptb / f"ptb.{split}.txt").read_text().splitlines(keepends=True)[:n]
        (mirror / f"ptb.{split}.txt").write_text("".join(lines))
        digests[split] = hashlib.sha256((mirror / f"ptb.{split}.txt").read_bytes()).hexdigest()
    return mirror, digests
