"""Train stage: truncated back-propagation through time with the MXNet Gluon tutorial's semantics.

Per window of ``bptt`` steps the token losses of all (bptt x batch) rows are summed and
back-propagated, gradients are clipped to a global norm of ``clip * bptt * batch``, and SGD steps
at ``lr`` per example (the trainer divides the summed gradient by the batch): the tutorial's
hyperparameters mean the same here. With ``clip_per="example"`` the cap is ``clip * batch``:
Zaremba et al.'s and TensorFlow ptb_word_lm's clip of the loss summed over the window's steps and
averaged over the batch (their lr means the same as ours). The hidden state flows from window to
window, detached, and restarts at zero each epoch. On several devices each batch's columns are
split across them and the gradients summed before clipping, so the step is the same as on one.

AWD-LSTM's regularisers and NT-ASGD (rnnlm.awd) are keys of the same run: ``alpha``/``beta``
(AR/TAR), ``wd`` (weight decay), ``variable_bptt`` (awd-lstm-lm's window lengths),
``optimizer="nt-asgd"`` (averaged weights once validation stalls) and ``finetune_epochs``
(finetune.py: the average restarted from the best weights). Off by default: a run that sets none
computes what it computed before they existed.

Nothing waits for the device per window: losses and gradient norms stay there until a report
every ``log_interval`` windows, where they are checked to be finite. This module holds a run's
settings, its set-up and its outputs; the epochs are rnnlm.loop's.
"""

import dataclasses
import logging
from pathlib import Path

from rnnlm.awd.windows import variable_windows
from rnnlm.checkpoint import PROGRESS, Checkpoint, RunState, write_metrics
from rnnlm.contention import conditions, load_average
from rnnlm.device import contexts, load_array, omp_threads
from rnnlm.io import RnnlmError, atomic_path, check_writable, digest, write_json
from rnnlm.loop import Diverged, Run
from rnnlm.model import RNNModel, save_model_config
from rnnlm.mx import BUILD, ENGINE
from rnnlm.mx import mxnet as mx
from rnnlm.provenance import code_digest, environment, now, settings_digest
from rnnlm.step import perplexity, windows

log = logging.getLogger(__name__)

SCHEDULES = ("plateau", "fixed")
OPTIMIZERS = ("sgd", "nt-asgd")
CLIP_PER = ("token", "example")  # what `clip` bounds: the mean token's or one sequence's gradient


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    lr: float = 1.0  # SGD step per example: the summed gradient is divided by the batch size
    clip: float = 0.2  # cap on the global gradient norm per token (scaled by bptt * batch)
    clip_per: str = "token"  # or "example": clip per window sequence (scaled by batch only)
    epochs: int = 1
    bptt: int = 5  # window length of truncated back-propagation
    seed: int = 1
    lr_schedule: str = "plateau"  # or "fixed": epoch e at lr * decay_factor ** (e - decay_after)
    restore_best: bool = True  # plateau: also go back to the best weights (False: PyTorch's way)
    decay_after: int = 0
    decay_factor: float = 0.25
    max_batches: int | None = None  # cap on windows per epoch (smoke tests, benchmarks)
    log_interval: int = 200  # windows between reports (the only host syncs)
    checkpoint_minutes: float = 10.0  # also checkpoint mid-epoch, at a report, this often
    # AWD-LSTM's (rnnlm.awd); alpha, beta and wd act on the mean token loss, as there
    alpha: float = 0.0  # AR: alpha * mean(last layer's dropped output ** 2)
    beta: float = 0.0  # TAR: beta * mean((its undropped output's step differences) ** 2)
    wd: float = 0.0  # weight decay: w -= lr * wd * w per token of the window
    variable_bptt: bool = False  # window lengths drawn around bptt (rnnlm.awd.windows)
    optimizer: str = "sgd"  # or "nt-asgd": averaged weights once validation stalls
    nonmono: int = 5  # nt-asgd: checks a validation loss is compared back past
    finetune_epochs: int = 0  # then this many epochs averaging anew from the best weights

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise RnnlmError(f"unknown lr schedule {self.lr_schedule!r}; choose plateau or fixed")
        if self.optimizer not in OPTIMIZERS:
            raise RnnlmError(f"unknown optimizer {self.optimizer!r}; choose sgd or nt-asgd")
        if self.optimizer == "nt-asgd" and self.lr_schedule == "fixed":
            raise RnnlmError("optimizer nt-asgd keeps lr constant and anneals by averaging "
                             "(awd-lstm-lm); lr_schedule fixed contradicts it: drop one of them")
        for name in ("alpha", "beta", "wd", "finetune_epochs"):
            if getattr(self, name) < 0:
                raise RnnlmError(f"{name} must be at least 0, got {getattr(self, name)}")
        if self.beta and self.bptt < 2:
            raise RnnlmError(f"beta (TAR) penalises step differences: it needs bptt >= 2, got "
                             f"{self.bptt}")
        if self.clip_per not in CLIP_PER:
            raise RnnlmError(f"unknown clip_per {self.clip_per!r}; choose token or example")
        for name in ("epochs", "bptt", "log_interval", "max_batches", "nonmono"):
            if getattr(self, name) is not None and getattr(self, name) < 1:  # None: no cap
                raise RnnlmError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "clip", "decay_factor"):
            if not getattr(self, name) > 0:
                raise RnnlmError(f"{name} must be positive, got {getattr(self, name)}")

    def hyperparameters(self):
        """The settings a result depends on (not how often it reports or checkpoints)."""
        fields = dataclasses.asdict(self)
        return {k: v for k, v in fields.items() if k not in ("log_interval", "checkpoint_minutes")}

    def max_norm(self, batch_size, length=None):
        """Cap on the global norm of a window's gradient summed over its bptt x batch tokens
        (over its ``length``'s, when lengths vary: the mean token's gradient is what is
        clipped; no length: a window of bptt)."""
        steps = length if self.variable_bptt and length else self.bptt
        return self.clip * batch_size * (steps if self.clip_per == "token" else 1)

    def decay(self, length):
        """``wd`` on the window's summed loss: per token, as on the mean loss per window."""
        return self.wd * length

    def epoch_windows(self, steps, epoch):
        """The epoch's windows; with TAR none of one step, whose step difference is none (and
        awd-lstm-lm's loop stops where two steps are left)."""
        cut = variable_windows(steps, self.bptt, self.seed, epoch) if self.variable_bptt else (
            windows(steps, self.bptt))
        if self.beta and cut[-1][1] < 2:
            cut = cut[:-1]
        return cut[:self.max_batches]

    def fixed_lr(self, epoch):
        return self.lr * self.decay_factor ** max(0, epoch - self.decay_after)


def train(model_config, config, train_path, valid_path, out_dir, device="cpu", gpus=1,
          keep_state=None, continue_from=None, record_divergence=False):
    """Train, or resume, one model; write model.params/.json, metrics.csv and summary.json.

    A tune's trial also keeps its final checkpoint in ``keep_state``, continues the one kept in
    ``continue_from`` (the same settings to fewer epochs: the same weights as one longer run),
    and, with ``record_divergence``, ends a diverging run with outputs that say so: one bad
    point of a search must not stop the others.
    """
    ctxs = contexts(device, gpus)
    check_writable(out_dir)
    train_parts = load_array(train_path, model_config.vocab_size, ctxs)
    valid_parts = load_array(valid_path, model_config.vocab_size, ctxs)
    check_one_window(train_path, train_parts, config.bptt)
    fingerprint = {**model_config.fields(), **config.hyperparameters(),
                   "train_sha256": digest(train_path), "valid_sha256": digest(valid_path)}
    ckpt = Checkpoint(Path(out_dir) / "checkpoint", fingerprint)
    saved = ckpt.usable()  # refuses a checkpoint of other settings before any work
    if saved is None and continue_from:
        saved = ckpt.adopt(continue_from)
    mx.random.seed(config.seed)
    # row_sparse gradients skip the rows a window did not read; a weight decay reads them all
    model = RNNModel(model_config, sparse_grad=device == "cpu" and not config.wd)
    model.initialize_weights(ctxs)
    model.hybridize(static_alloc=True, static_shape=model.static_shape)
    run = Run(config, model, ctxs, train_parts, valid_parts, ckpt)
    state = run.resume(saved) if saved else RunState(
        lr=config.fixed_lr(1) if config.lr_schedule == "fixed" else config.lr, started=now(),
        load_start=load_average())
    try:
        run.fit(state)
    except Diverged as err:
        if not record_divergence:
            raise
        log.warning("%s", err)
        write_outputs(run, state, device, diverged=str(err))
    else:
        write_outputs(run, state, device)
    if keep_state:
        ckpt.keep(keep_state)
    else:
        ckpt.remove()
    return state


def check_one_window(path, parts, bptt):
    """A training array must fill one window: ``bptt`` input rows and their targets."""
    steps, columns = parts[0].shape[0], sum(p.shape[1] for p in parts)
    if steps < bptt + 1:
        raise RnnlmError(f"{path}: {steps * columns} tokens ({steps} steps x {columns} columns) "
                         f"are too few for one window of bptt {bptt}: need at least "
                         f"{columns * (bptt + 1)} tokens at batch size {columns}; use a longer "
                         "training split or a smaller batch_size or bptt")


def run_settings(model_config, config, batch_size, eval_batch_size):
    """A run's resolved settings, as summary.json records them and digests them
    (settings_sha256): what rnnlm.plan.runs.Plan.training_key must agree with."""
    return {**model_config.fields(), **dataclasses.asdict(config),
            "batch_size": batch_size, "eval_batch_size": eval_batch_size}


def write_outputs(run, state, device, diverged=None):
    """The declared outputs of a finished run; summary.json last, as the mark of completion.
    A ``diverged`` run (its message) keeps the weights of its best epoch, if any finished.

    Times: ``train_seconds`` counts the training windows only (each report interval, so neither
    validation nor checkpoints), ``tokens_per_s`` is training tokens over it: the throughput
    convention of the tutorial and the PyTorch example. ``wall_seconds`` is the whole run: its
    training, validation and checkpoints, in every attempt up to that attempt's last checkpoint.
    ``provenance.conditions`` says how busy the machine was meanwhile (rnnlm.contention).
    """
    out_dir = run.ckpt.folder.parent
    with atomic_path(out_dir / "model.params") as tmp:
        if state.best_epoch:
            tmp.write_bytes(run.ckpt.best_path(state.best_epoch).read_bytes())
        else:
            run.model.save_parameters(str(tmp))
    save_model_config(run.model.config, out_dir / "model.json")
    write_metrics(out_dir / "metrics.csv", state.metrics)
    write_metrics(out_dir / "progress.csv", state.progress, PROGRESS)
    seconds = sum(row["seconds"] for row in state.metrics)
    tokens = sum(row["seconds"] * row["tokens_per_s"] for row in state.metrics)
    run.count_wall_time(state)
    threads = omp_threads()
    settings = run_settings(run.model.config, run.cfg, run.batch_size,
                            sum(p.shape[1] for p in run.valid))
    data = {split: run.ckpt.fingerprint[f"{split}_sha256"] for split in ("train", "valid")}
    write_json(out_dir / "summary.json", {
        "hyperparameters": settings, "param_count": run.model.param_count(),
        "best_epoch": state.best_epoch, "best_valid_loss": state.best_loss,
        "averaged_from_epoch": state.averaging_from,
        "best_valid_ppl": None if state.best_loss is None else perplexity(state.best_loss),
        "epochs": len(state.metrics), "diverged": diverged,
        "model_sha256": digest(out_dir / "model.params"),
        "train_seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9),
        "wall_seconds": state.wall_seconds, "threads": threads, "device": device,
        "gpus": len(run.ctxs) if device == "gpu" else 0,
        "provenance": {**environment(), "train_code": code_digest("train"),
                       "mxnet_build": str(BUILD), "engine": ENGINE, "threads": threads,
                       "device": device, "seed": run.cfg.seed,
                       "settings_sha256": settings_digest(settings), "data_sha256": data,
                       "started": state.started, "finished": now(),
                       "wall_seconds": state.wall_seconds,
                       "conditions": conditions(state.cpu_seconds, seconds, tokens, threads,
                                                state.load_start)}})
