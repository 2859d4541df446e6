"""Leaf helpers every stage shares: the user-facing error and writes that are never half done."""

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

# What a blank line of a corpus reads as (vocab, batchify): nothing, or an <eos> of its own.
BLANK_LINES = ("skip", "eos")


def log_to_stderr(level):
    """The log lines every rnnlm process writes (the CLI's, and dynamic evaluation's workers',
    into the same job log)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


_UMASK = os.umask(0)
os.umask(_UMASK)


class RnnlmError(Exception):
    """A problem the user can fix: the CLI prints it as one line and exits ``exit_code``, no
    traceback."""

    exit_code = 1


class Damaged(RnnlmError):
    """A file whose bytes are not the ones its writer recorded, or that cannot be read: a disk
    or copy error, or a write cut short. Its message names the file; the caller adds the fix."""


def digest(path):
    """SHA-256 (hex) of a file, read in chunks: about 50 ms for 20 MB."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def digest_record(path):
    """Where the SHA-256 of an array that batchify wrote is kept: ``<name>.sha256`` beside it,
    in sha256sum's format (``sha256sum -c`` checks it)."""
    path = Path(path)
    return path.with_name(f"{path.name}.sha256")


def damage(path, recorded, record):
    """Why ``path`` is not the file whose SHA-256 ``record`` (a file's name) holds as
    ``recorded``, or None when it is."""
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing ({record} records sha256 {recorded})"
    found = digest(path)
    if found != recorded:
        return f"{path} is damaged (sha256 {found}, {record} records {recorded})"
    return None


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
