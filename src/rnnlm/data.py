"""Download stage: fetch a corpus's three splits from where its definition says, check every digest
it gives, and write ``train.txt``, ``valid.txt`` and ``test.txt``.

A corpus comes as three files under a base location, as three members of an archive there, or as
one file split by a stated rule (``Source``). Nothing reaches its final name until every output is
written and verified: a failed, truncated or corrupt download never leaves anything that looks
done. Files are streamed, never read whole: WikiText-103's archive is 180 MB. Beside the splits,
``source.json`` records where each was read and its SHA-256: the provenance table names what the
run read, whatever config a later command is given.
"""

import contextlib
import dataclasses
import hashlib
import http.client
import logging
import math
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from rnnlm.io import RnnlmError, atomic_path, digest, iter_lines, write_json
from rnnlm.provenance import code_digest, now

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
ALGORITHMS = ("sha256", "sha1")  # sha1: the digests GluonNLP publishes for WikiText
USER_AGENT = "rnnlm-pipeline (python urllib)"  # some mirrors refuse urllib's default
SOURCE_RECORD = "source.json"  # beside the splits: what was read, by which code


def parse_digest(text, where="digest"):
    """``algo:hex`` as (algo, hex); a bad one is the user's to fix."""
    algo, _, hexdigest = str(text).partition(":")
    size = hashlib.new(algo).digest_size * 2 if algo in ALGORITHMS else 0
    if not size or len(hexdigest) != size or any(c not in "0123456789abcdef" for c in hexdigest):
        raise RnnlmError(f"{where}: {text!r} is not ALGO:HEX with ALGO one of "
                         f"{', '.join(ALGORITHMS)} (e.g. sha256:<64 lower-case hex digits>)")
    return algo, hexdigest


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a corpus's splits come from and how they are checked (workflow/corpora/*.yaml)."""

    name: str  # the corpus, for messages and config keys
    url: str  # http(s)://, file:// or a local directory
    files: dict | None = None  # split -> file under url, or member path of `archive`
    archive: str | None = None  # a .zip or .tar.gz under url holding `files`
    file: str | None = None  # one file under url, split by `split` instead of `files`
    split: tuple = (0.1, 0.1)  # with `file`: the valid and test fractions of its lines
    digests: dict = dataclasses.field(default_factory=dict)  # key -> "algo:hex"

    def __post_init__(self):
        if (self.files is None) == (self.file is None):
            self.fail("give either files (train, valid, test) or file (one file to split)")
        if self.files is not None and sorted(self.files) != sorted(SPLITS):
            self.fail(f"files must name train, valid and test (got {', '.join(self.files)})")
        if self.archive and self.file:
            self.fail("archive holds files; it cannot be used with file")
        valid, test = self.split
        if not (valid > 0 and test > 0 and valid + test < 1):
            self.fail(f"split fractions valid {valid} and test {test} must be > 0, sum < 1")
        keys = ["file"] if self.file else [*(["archive"] if self.archive else []), *SPLITS]
        for key, text in self.digests.items():
            if key not in keys:
                self.fail(f"digest {key!r}: this corpus can have digests of {', '.join(keys)}")
            parse_digest(text, f"corpus {self.name}: digest {key}")

    def fail(self, problem):
        raise RnnlmError(f"corpus {self.name}: {problem}")

    def hint(self):
        """How to point the corpus at a mirror that has what it needs."""
        holds = self.archive or self.file or ", ".join(self.files[s] for s in SPLITS)
        return (f"set corpora.{self.name}.url (or --url) to a directory, file:// or http(s):// "
                f"URL holding {holds}")

    def location(self, name):
        """URL or local path of ``name`` under ``url``."""
        scheme = urllib.parse.urlsplit(self.url).scheme
        if scheme in ("http", "https"):
            return self.url.rstrip("/") + "/" + name
        if scheme == "file":
            return Path(urllib.request.url2pathname(urllib.parse.urlsplit(self.url).path)) / name
        if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive
            self.fail(f"unsupported URL scheme {scheme!r} in {self.url!r}; use http(s)://, "
                      "file:// or a directory")
        return Path(self.url) / name


def at_mirror(source, path):
    """``path`` of a local mirror, which must be there."""
    if not path.is_file():
        source.fail(f"{path}: no such file at the mirror; {source.hint()}")
    return path


def fetch(source, location, dest, retries=3, timeout=60):
    """Copy ``location`` to ``dest``, retrying network errors 1 s, 2 s, 4 s ... apart."""
    if isinstance(location, Path):
        shutil.copyfile(at_mirror(source, location), dest)
        return
    attempts = 0
    while True:
        attempts += 1
        try:
            return _get(location, dest, timeout)
        except urllib.error.HTTPError as err:
            if err.code < 500:
                source.fail(f"{location}: HTTP {err.code} {err.reason}; {source.hint()}")
            problem = f"HTTP {err.code}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            problem = str(getattr(err, "reason", err))
        if attempts >= retries:
            source.fail(f"cannot download {location} ({problem}) after {attempts} attempt"
                        f"{'s' * (attempts > 1)}; offline? {source.hint()}")
        delay = 2 ** (attempts - 1)
        log.warning("%s: %s (attempt %d of %d), retrying in %d s", location, problem, attempts,
                    retries, delay)
        time.sleep(delay)


def _get(url, dest, timeout):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
        promised = response.headers.get("Content-Length")
        if promised is not None and out.tell() != int(promised):
            raise http.client.IncompleteRead(b"", int(promised) - out.tell())


def verify(source, key, path, where):
    """Check ``path`` against the corpus's digest ``key``, if it gives one."""
    if key not in source.digests:
        return
    algo, expected = parse_digest(source.digests[key])
    with open(path, "rb") as f:
        actual = hashlib.file_digest(f, algo).hexdigest()
    if actual != expected:
        source.fail(f"{where}: checksum mismatch (expected {algo} {expected}, got {actual}); the "
                    "file is corrupt, truncated or another version: replace it at the mirror or "
                    f"fix corpora.{source.name}.digests.{key}")
    log.info("%s: verified %s %s", where, algo, actual[:12])


def local_copy(source, name, stack, folder, retries, timeout):
    """A readable path of ``name``: itself when local, else a download deleted on exit."""
    location = source.location(name)
    if isinstance(location, Path):
        return location, at_mirror(source, location)
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(name).name}.", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp)
    stack.callback(tmp.unlink, missing_ok=True)
    fetch(source, location, tmp, retries, timeout)
    return location, tmp


def extract(source, archive, where, members):
    """Stream each member of a .zip or .tar(.gz) archive into its temporary path."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _copy_members(source, where, members, zf.namelist(), zf.open)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                names = [m.name for m in tf.getmembers() if m.isfile()]
                _copy_members(source, where, members, names, tf.extractfile)
        else:
            source.fail(f"{where}: not a .zip or .tar.gz archive; replace it at the mirror or "
                        f"fix corpora.{source.name}.archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        source.fail(f"{where}: damaged archive ({err}); replace it at the mirror")


def _copy_members(source, where, members, names, opener):
    for member, dest in members.items():
        if member not in names:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            source.fail(f"{where} has no member {member} (it holds {shown}); set "
                        f"corpora.{source.name}.files to the paths of its members")
        with opener(member) as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)


def split_lines(source, path, where, dests):
    """Cut one text into train, valid and test by the stated rule: of its N non-blank lines, the
    last floor(N * test) are test, the floor(N * valid) before them valid, the rest train; order
    and running text are kept, and blank lines stay where they fall."""
    with open(path, "rb") as f:
        total = sum(1 for line in iter_lines(f) if line.strip())
    sizes = [math.floor(total * fraction) for fraction in source.split]
    if min(sizes) < 1:
        source.fail(f"{where}: {total} non-blank lines are too few to give valid "
                    f"{source.split[0]} and test {source.split[1]} of them at least one line "
                    f"each; add text, or raise corpora.{source.name}.split")
    ends = (total - sum(sizes), total - sizes[1])  # non-blank lines before valid, before test
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(open(dests[s], "wb")) for s in SPLITS]
        seen = 0
        with open(path, "rb") as f:
            for line in iter_lines(f):
                outs[sum(seen >= end for end in ends)].write(line)
                seen += bool(line.strip())
    log.info("%s: %d lines to train, %d valid, %d test", where, ends[0], *sizes)


def check_not_empty(source, split, path, where):
    with open(path, "rb") as f:
        if not any(line.strip() for line in f):
            source.fail(f"{where}: {split} split is empty (no tokens); put text in it at the "
                        "mirror, or fix the corpus definition")


def download(source, out_dir, retries=3, timeout=60):
    """Fetch, split or extract and verify every split into ``out_dir``; the three paths.

    All three are written and verified before any is renamed into place: one bad file leaves
    none behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dests = {split: out_dir / f"{split}.txt" for split in SPLITS}
    with contextlib.ExitStack() as stack:
        tmps = {split: stack.enter_context(atomic_path(dest)) for split, dest in dests.items()}
        wheres = _fill(source, tmps, stack, out_dir, retries, timeout)
        for split in SPLITS:
            check_not_empty(source, split, tmps[split], wheres[split])
        write_json(stack.enter_context(atomic_path(out_dir / SOURCE_RECORD)),
                   source_record(source, wheres, tmps))
    log.info("corpus %s: %s", source.name, ", ".join(str(p) for p in dests.values()))
    return [dests[split] for split in SPLITS]


def source_record(source, wheres, paths):
    """Where each split was read (a mirror's path or a URL, an archive's member), the SHA-256 of
    what was written, and the code that did it: ``source.json``."""
    return {"corpus": source.name, "url": source.url,
            "read": {split: str(where.resolve() if isinstance(where, Path) else where)
                     for split, where in wheres.items()},
            "sha256": {split: digest(paths[split]) for split in SPLITS},
            "code": code_digest("data"), "downloaded": now()}


def _fill(source, tmps, stack, folder, retries, timeout):
    """Write the three splits into ``tmps``; for each, where it came from (for messages)."""
    if source.files and not source.archive:
        wheres = {}
        for split in SPLITS:
            location = source.location(source.files[split])
            fetch(source, location, tmps[split], retries, timeout)
            verify(source, split, tmps[split], location)
            wheres[split] = location
        return wheres
    name = source.archive or source.file
    location, path = local_copy(source, name, stack, folder, retries, timeout)
    verify(source, "archive" if source.archive else "file", path, location)
    if source.file:
        split_lines(source, path, location, tmps)
        return {split: f"{location} ({split} part)" for split in SPLITS}
    members = {source.files[split]: tmps[split] for split in SPLITS}
    extract(source, path, location, members)
    wheres = {split: f"{location}:{source.files[split]}" for split in SPLITS}
    for split in SPLITS:
        verify(source, split, tmps[split], wheres[split])
    return wheres
