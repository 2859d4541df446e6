"""Checkpoints of a training run: enough to resume a killed job where it stopped.

A checkpoint is a folder of files whose names carry their position (``e3b1200``: epoch 3 after
1200 windows) plus ``checkpoint.json``, written last and atomically: it is the commit record that
names the files of the latest complete checkpoint, among them ``metrics.csv``: the finished
epochs' metrics, for a reader watching the run. Files it does not name are debris of an
interrupted write and are deleted at the next save. It also holds the run's hyperparameters and
data digests; a run with other settings refuses to resume from it instead of mixing the two.
And it holds the SHA-256 of each file it names: a checkpoint whose files differ (a disk error, a
write the system lost) is set aside, renamed and never deleted, and the run starts over.
"""

import dataclasses
import logging
import shutil
import time
from pathlib import Path

from rnnlm.io import Damaged, RnnlmError, atomic_path, damage, digest, read_json, write_json
from rnnlm.live import NAME as LIVE
from rnnlm.model import read_arrays
from rnnlm.mx import gluon, nd
from rnnlm.mx import mxnet as mx

log = logging.getLogger(__name__)

FORMAT = 1


@dataclasses.dataclass
class RunState:
    """Where a run is: everything besides the arrays that a resumed run needs."""

    lr: float
    epoch: int = 1  # the epoch in progress (1-based)
    batch: int = 0  # windows of `epoch` already trained
    best_loss: float | None = None  # best validation loss so far
    best_epoch: int = 0
    metrics: list = dataclasses.field(default_factory=list)  # one dict per finished epoch
    progress: list = dataclasses.field(default_factory=list)  # one dict per training report
    loss_sum: float = 0.0  # training loss summed over the `batch` windows done in `epoch`
    tokens: int = 0  # ... over this many tokens
    seconds: float = 0.0  # ... in this many seconds of training
    tokens_seen: int = 0  # training tokens since the run began, every epoch
    cpu_seconds: float = 0.0  # the process's CPU time in the training windows, every epoch
    load_start: float | None = None  # the 1-minute load average when the run began
    wall_seconds: float = 0.0  # the run's time in every attempt, up to its last checkpoint
    started: str = ""  # when the run's first attempt began (UTC, ISO 8601)
    history: list = dataclasses.field(default_factory=list)  # validation losses, for nt-asgd
    averaging_from: int | None = None  # the epoch whose steps NT-ASGD began to average
    average_steps: int = 0  # steps in the average
    done: bool = False  # fine-tuning stopped early, as finetune.py does


def _but_epochs(fingerprint):
    return {k: v for k, v in fingerprint.items() if k != "epochs"}


def _tag(state):
    return f"e{state.epoch}b{state.batch}"


class Checkpoint:
    def __init__(self, folder, fingerprint):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.record = self.folder / "checkpoint.json"

    def load(self):
        """The saved record (state and file names), or None when there is no checkpoint."""
        if not self.record.is_file():
            return None
        try:
            saved = read_json(self.record)
        except RnnlmError:
            raise Damaged(f"{self.record} is damaged (not valid JSON)") from None
        if saved.get("format") != FORMAT or saved.get("fingerprint") != self.fingerprint:
            raise RnnlmError(f"{self.folder} holds a checkpoint of a run with other settings "
                             f"({self._differences(saved.get('fingerprint') or {})}); rerun with "
                             f"those settings to resume it, or delete {self.folder} to start over")
        return saved

    def usable(self):
        """The record to resume from (as ``load``), its files checked first; a damaged
        checkpoint is set aside and None returned: the run starts without it."""
        try:
            saved = self.load()
        except Damaged as err:  # checkpoint.json itself
            return self._set_aside(str(err))
        problem = damaged_file(saved, self.folder) if saved else None
        return self._set_aside(problem) if problem else saved

    def _set_aside(self, problem):
        stamp = time.strftime("%Y%m%dT%H%M%S")
        dest, n = self.folder.with_name(f"{self.folder.name}.damaged-{stamp}"), 1
        while dest.exists():
            n += 1
            dest = self.folder.with_name(f"{self.folder.name}.damaged-{stamp}-{n}")
        self.folder.rename(dest)
        log.warning("%s: set aside as %s, not resumed from; the run starts over without it",
                    problem, dest)
        return None

    def _differences(self, old, skip=()):
        keys = sorted((set(old) | set(self.fingerprint)) - set(skip))
        diff = [f"{k}: {old.get(k)} -> {self.fingerprint.get(k)}" for k in keys
                if old.get(k) != self.fingerprint.get(k)]
        return ", ".join(diff) or f"format {FORMAT} expected"

    def path(self, name):
        return self.folder / name

    def save(self, state, model, trainer, hidden, average=None):
        """Parameters, trainer state, hidden state, metrics and NT-ASGD's ``average`` (name ->
        array, when it averages) at ``state``'s position, then the record."""
        tag = _tag(state)
        files = {"params": f"model-{tag}.params", "trainer": f"trainer-{tag}.states",
                 "hidden": f"hidden-{tag}.nd", "best": self.best_path(state.best_epoch).name,
                 "metrics": "metrics.csv"}
        if average is not None:
            files["average"] = f"average-{tag}.nd"
            with atomic_path(self.path(files["average"])) as tmp:
                nd.save(str(tmp), {k: v.copyto(mx.cpu()) for k, v in average.items()})
        with atomic_path(self.path(files["params"])) as tmp:
            model.save_parameters(str(tmp))
        with atomic_path(self.path(files["trainer"])) as tmp:
            trainer.save_states(str(tmp))
        with atomic_path(self.path(files["hidden"])) as tmp:
            nd.save(str(tmp), hidden)
        write_metrics(self.path(files["metrics"]), state.metrics)
        record = {"format": FORMAT, "fingerprint": self.fingerprint, "files": files,
                  "sha256": {name: digest(self.path(name)) for name in files.values()
                             if self.path(name).is_file()},  # no best-e0 before an epoch ends
                  "state": dataclasses.asdict(state)}
        write_json(self.record, record)
        self._delete_unnamed(files.values())
        log.debug("checkpoint %s written", tag)

    def best_path(self, epoch):
        return self.folder / f"best-e{epoch}.params"

    def save_best(self, model, epoch):
        with atomic_path(self.best_path(epoch)) as tmp:
            model.save_parameters(str(tmp))

    def _delete_unnamed(self, keep):
        for path in self.folder.iterdir():
            if path.name not in (self.record.name, LIVE) and path.name not in keep:
                path.unlink(missing_ok=True)

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)

    def keep(self, dest):
        """Move the checkpoint of a finished run to ``dest``, from where a longer run of the
        same settings continues it (a tune's trial, rung after rung)."""
        dest = Path(dest)
        self.path(LIVE).unlink(missing_ok=True)  # a kept state is not a running run
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.folder.is_dir():
            self.folder.rename(dest)
        else:  # a run that diverged before its first checkpoint: nothing to continue
            dest.mkdir()

    def adopt(self, source):
        """Copy the kept checkpoint in ``source`` (a finished run with these settings and fewer
        epochs) as this run's own, so a killed continuation resumes from its own copy; returns
        the record, as load does."""
        source = Path(source)
        if not (source / "checkpoint.json").is_file():
            raise RnnlmError(f"{source}: no kept checkpoint to continue (checkpoint.json "
                             "missing); rerun the trial it comes from")
        saved = read_json(source / "checkpoint.json")
        old = saved.get("fingerprint") or {}
        if saved.get("format") != FORMAT or _but_epochs(old) != _but_epochs(self.fingerprint):
            raise RnnlmError(f"{source} holds a run with other settings "
                             f"({self._differences(old, skip=('epochs',))}); it cannot be "
                             "continued with these")
        problem = damaged_file(saved, source)
        if problem:
            raise Damaged(f"{problem}: delete {source} and run snakemake again to retrain the "
                          "rung that keeps it")
        state = saved["state"]
        if state["batch"] or old["epochs"] >= self.fingerprint["epochs"] or (
                state["epoch"] != old["epochs"] + 1):
            raise RnnlmError(f"{source}: a finished run of {old['epochs']} epochs is needed "
                             f"to continue to {self.fingerprint['epochs']}")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in saved["files"].values():
            shutil.copyfile(source / name, self.path(name))
        write_json(self.record, {**saved, "fingerprint": self.fingerprint})
        return self.load()


def damaged_file(saved, folder):
    """Why a file that the record ``saved`` names in ``folder`` is not the one written, or
    None."""
    folder = Path(folder)
    if "sha256" in saved:
        problems = (damage(folder / name, recorded, "checkpoint.json")
                    for name, recorded in saved["sha256"].items())
    else:  # a record from before digests were kept: the arrays a resume reads must read whole
        problems = (_unreadable(folder / saved["files"][key])
                    for key in ("params", "hidden", "average") if key in saved["files"])
    return next((problem for problem in problems if problem), None)


def _unreadable(path):
    try:
        read_arrays(path)
    except Damaged as err:
        return str(err)
    return None


def gather_states(states):
    """Per-context state lists -> one list of (1, B, nhid) arrays on the CPU (device-count free)."""
    return [nd.concat(*[s.as_in_context(mx.cpu()) for s in column], dim=1)
            for column in zip(*states, strict=True)]


def scatter_states(hidden, ctxs):
    """Inverse of ``gather_states``: the same column split as the data (split_and_load)."""
    parts = [gluon.utils.split_and_load(h, ctxs, batch_axis=1, even_split=False) for h in hidden]
    return [list(per_ctx) for per_ctx in zip(*parts, strict=True)]


def restore(saved, folder, model, trainer, ctxs):
    """Load a saved record's arrays into ``model`` and ``trainer``; return state, hidden and
    the NT-ASGD average (name -> array; None when it did not average)."""
    folder, files = Path(folder), saved["files"]
    model.load_parameters(str(folder / files["params"]), ctx=ctxs)
    trainer.load_states(str(folder / files["trainer"]))
    state = RunState(**saved["state"])
    trainer.set_learning_rate(state.lr)
    hidden = scatter_states(nd.load(str(folder / files["hidden"])), ctxs)
    average = nd.load(str(folder / files["average"])) if "average" in files else None
    return state, hidden, average


METRICS = ("epoch", "lr", "train_loss", "train_ppl", "valid_loss", "valid_ppl", "seconds",
           "tokens_per_s", "tokens_seen")
PROGRESS = ("epoch", "batch", "tokens_seen", "lr", "train_loss", "train_ppl")


def write_metrics(path, rows, columns=METRICS):
    """A CSV of ``rows`` (dicts): metrics.csv by default, progress.csv with PROGRESS."""
    lines = [",".join(columns)] + [",".join(_cell(row[c]) for c in columns) for row in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _cell(value):
    return str(value) if isinstance(value, int) else f"{value:.9g}"
