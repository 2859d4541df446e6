"""What a dynamic evaluation job has finished, kept on disk until the job ends, so a job killed
part way (a cluster's time limit, a lost session) resumes where it stopped instead of starting
over: the gradient statistics and each pass, written as each ends, in a folder beside the job's
output (``dynamic_eval.parts/``), which the job removes once its output is written.

The folder is used again only for the same model, arrays, settings and code (``key.json``: their
SHA-256, the settings that shape a pass, the digest of rnnlm.adapt's code); anything else starts
it afresh. The passes are deterministic (rnnlm.adapt.passes: one process or several, the same
bits), so a resumed job writes what an uninterrupted one would.
"""

import json
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np

from rnnlm.io import RnnlmError, atomic_path, digest, read_json

log = logging.getLogger(__name__)


def job_key(run_dir, arrays, **settings):
    """What makes the finished parts reusable: the model's and the arrays' bytes, and the
    settings of the passes (a pass's lr and decay are in its file's name)."""
    files = {"model.params": Path(run_dir) / "model.params", **arrays}
    return {**{name: digest(path) for name, path in files.items()}, **settings}


class Finished:
    """The folder of one job's finished parts, afresh unless ``key`` is the one it was made for."""

    def __init__(self, folder, key):
        self.folder = Path(folder)
        stamp = self.folder / "key.json"
        if stamp.is_file() and _readable_json(stamp) == key:
            log.info("%s: resuming: %d finished passes and %s gradient statistics kept from a "
                     "job that stopped", self.folder, len(list(self.folder.glob("pass-*.npz"))),
                     "the" if (self.folder / "statistics.npz").is_file() else "no")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            with atomic_path(stamp) as tmp:
                tmp.write_text(json.dumps(key, sort_keys=True))

    def _path(self, job):
        return self.folder / f"pass-{job.split}-lr{job.lr!r}-decay{job.decay!r}.npz"

    def statistics(self):
        """(MS arrays, windows, seconds) kept, or None."""
        saved = _load(self.folder / "statistics.npz")
        if saved is None:
            return None
        count = int(saved["count"])
        return ([saved[f"ms{i}"] for i in range(count)], int(saved["windows"]),
                float(saved["seconds"]))

    def keep_statistics(self, ms, windows, seconds):
        _save(self.folder / "statistics.npz", windows=windows, seconds=seconds, count=len(ms),
              **{f"ms{i}": m for i, m in enumerate(ms)})

    def result(self, job):
        """The kept (job, log p, outputs or None, seconds) of a Pass, or None."""
        saved = _load(self._path(job))
        if saved is None:
            return None
        return job, saved["logp"], saved["hidden"] if "hidden" in saved else None, float(
            saved["seconds"])

    def keep(self, job, logp, hidden, seconds):
        arrays = {"logp": logp, "seconds": seconds}
        if hidden is not None:
            arrays["hidden"] = hidden
        _save(self._path(job), **arrays)

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


class Resuming:
    """A rnnlm.adapt.passes.Runner that yields the passes ``finished`` holds instead of running
    them again, and keeps each pass the runner ends as it ends. The last-layer outputs are kept
    for test passes and for the best pass over validation so far by ``rank(job, log p)`` (the
    choice's own order; the cache reads no other pass's), so the disk holds at most one pass's
    over validation."""

    def __init__(self, runner, finished, rank):
        self.runner, self.finished, self.rank = runner, finished, rank
        self.ready, self.best = [], None
        self.workers = runner.workers

    def submit(self, job):
        kept = self.finished.result(job)
        if kept is None:
            self.runner.submit(job)
        else:
            self.ready.append(kept)
            self._rank(job, kept[1])

    def idle(self):
        return self.runner.idle()

    def results(self):
        inner = self.runner.results()
        while True:
            if self.ready:
                yield self.ready.pop(0)
                continue
            result = next(inner, None)
            if result is None:  # none pending when it ended; a pass submitted since needs another
                if not self.runner.pending:
                    return
                inner = self.runner.results()
                continue
            job, logp, hidden, seconds = result
            beaten = self.best
            if job.split == "valid" and not self._rank(job, logp):
                hidden = None
            self.finished.keep(job, logp, hidden, seconds)
            if beaten is not None and self.best[1] != beaten[1]:
                kept = self.finished.result(beaten[1])  # its outputs: no longer wanted
                self.finished.keep(beaten[1], kept[1], None, kept[3])
            yield result

    def _rank(self, job, logp):
        """Whether a pass over validation is the best so far."""
        if job.split != "valid":
            return False
        ranked = self.rank(job, logp)
        if self.best is None or ranked < self.best[0]:
            self.best = (ranked, job)
            return True
        return False


def _readable_json(path):
    try:
        return read_json(path)
    except RnnlmError:  # not JSON: it only means "start afresh"
        return None


def _save(path, **arrays):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load(path):
    """The arrays of an npz written whole by _save (atomic), or None if there is none or it
    cannot be read (then its part runs again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            return {name: saved[name] for name in saved.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        log.warning("%s: unreadable (%s); its part runs again", path, err)
        return None
