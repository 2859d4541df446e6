"""Leaf helpers every stage shares: the user-facing error and writes that are never half done."""

import contextlib
import json
import os
import tempfile
from pathlib import Path

# What a blank line of a corpus reads as (vocab, batchify): nothing, or an <eos> of its own.
BLANK_LINES = ("skip", "eos")

_UMASK = os.umask(0)
os.umask(_UMASK)


class RnnlmError(Exception):
    """A problem the user can fix: the CLI prints it as one line and exits ``exit_code``, no
    traceback."""

    exit_code = 1


def check_writable(folder):
    """Fail now, not after hours of training, when ``folder`` cannot take the outputs."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise RnnlmError(f"output folder {folder} is not writable ({err.strerror}); fix its "
                         "permissions or choose another --out-dir") from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    A killed or failed writer leaves at most a hidden temporary file, never a ``path`` that a
    workflow manager would take for complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the result ordinary permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RnnlmError(f"{path}: file not found; run the stage that writes it first") from None
    except json.JSONDecodeError as err:
        raise RnnlmError(f"{path}: not valid JSON ({err}); delete it and rerun its stage") from None


def iter_lines(f, size=1 << 20):
    """The lines of binary file ``f``, each with its end as written: \\n, \\r\\n, or a lone \\r
    (classic Mac OS text, which would otherwise read as one line)."""
    pending = b""
    for data in iter(lambda: f.read(size), b""):
        lines = (pending + data).splitlines(keepends=True)
        pending = lines.pop() if not lines[-1].endswith(b"\n") else b""  # a \r's \n may follow
        yield from lines
    yield from pending.splitlines(keepends=True)
