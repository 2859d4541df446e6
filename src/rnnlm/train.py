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
every ``log_interval`` windows, where they are checked to be finite.
"""

import dataclasses
import logging
import math
import signal
import time
import zlib
from pathlib import Path

import numpy as np

from rnnlm.awd.asgd import Average, should_average
from rnnlm.awd.windows import variable_windows
from rnnlm.checkpoint import (
    PROGRESS,
    Checkpoint,
    RunState,
    digest,
    gather_states,
    restore,
    write_metrics,
)
from rnnlm.device import contexts, load_array, omp_threads
from rnnlm.io import RnnlmError, atomic_path, check_writable, write_json
from rnnlm.model import RNNModel, save_model_config
from rnnlm.mx import ENGINE, autograd, gluon, nd
from rnnlm.mx import mxnet as mx
from rnnlm.progress import Progress, Stopped, stop_signals
from rnnlm.provenance import environment, now, settings_digest
from rnnlm.step import (
    clipped_sgd,
    global_norm,
    loss_graph,
    perplexity,
    split_loss,
    window_loss,
    windows,
)

log = logging.getLogger(__name__)

SCHEDULES = ("plateau", "fixed")
OPTIMIZERS = ("sgd", "nt-asgd")
CLIP_PER = ("token", "example")  # what `clip` bounds: the mean token's or one sequence's gradient
PLATEAU_FACTOR = 0.25  # the tutorial's: lr x0.25 and back to the best weights when valid stalls


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
        clipped)."""
        steps = length if self.variable_bptt else self.bptt
        return self.clip * batch_size * (steps if self.clip_per == "token" else 1)

    def decay(self, length):
        """``wd`` on the window's summed loss: per token, as on the mean loss per window."""
        return self.wd * length

    def epoch_windows(self, steps, epoch):
        cut = variable_windows(steps, self.bptt, self.seed, epoch) if self.variable_bptt else (
            windows(steps, self.bptt))
        return cut[:self.max_batches]

    def fixed_lr(self, epoch):
        return self.lr * self.decay_factor ** max(0, epoch - self.decay_after)


def reseed(seed, epoch, batch):
    """Dropout noise from a fixed point per (epoch, batch), so a resumed epoch draws the same."""
    mx.random.seed(zlib.crc32(f"{seed}:{epoch}:{batch}".encode()) % 2**31)


class Run:
    """The live objects of one training run; ``RunState`` holds what survives a restart."""

    def __init__(self, config, model, ctxs, train_parts, valid_parts, ckpt):
        self.cfg, self.model, self.ctxs, self.ckpt = config, model, ctxs, ckpt
        self.train, self.valid = train_parts, valid_parts
        # Sums gradients across devices and holds the lr and optimizer state checkpoints save;
        # the step itself is clipped_sgd's.
        self.trainer = gluon.Trainer(model.collect_params(), "sgd",
                                     {"learning_rate": config.lr, "momentum": 0.0, "wd": 0.0},
                                     kvstore="device", update_on_kvstore=False)
        self.net = loss_graph(model, config.alpha, config.beta,
                              static_shape=not config.variable_bptt)
        self.eval_net = loss_graph(model)  # its own graph: other shapes, no gradients
        self.no_decay = [nd.zeros((1,), ctx=c) for c in ctxs]
        self.params = list(model.collect_params().values())
        self.batch_size = sum(p.shape[1] for p in train_parts)
        self.windows = config.epoch_windows(train_parts[0].shape[0], 1)
        self.average = None  # NT-ASGD's running mean of the weights, once it averages
        self.hidden = self.zero_state()
        self.progress = Progress()
        self.saved_at = self.wall_mark = time.monotonic()
        self.stop = []  # signals caught: stop at the next window, after a checkpoint

    def zero_state(self):
        return [self.model.begin_state(p.shape[1], p.context) for p in self.train]

    def resume(self, saved):
        state, self.hidden, average = restore(saved, self.ckpt.folder, self.model, self.trainer,
                                              self.ctxs)
        if average is not None:
            self.average = Average.from_named(self.params, self.ctxs[0], state.average_steps,
                                              average)
        self.windows = self.cfg.epoch_windows(self.train[0].shape[0], state.epoch)
        log.info("resuming from %s: epoch %d after %d of %d windows", self.ckpt.folder,
                 state.epoch, state.batch, len(self.windows))
        reseed(self.cfg.seed, state.epoch, state.batch)
        return state

    def fit(self, state):
        with stop_signals(self.stop):
            while state.epoch <= self.cfg.epochs + self.cfg.finetune_epochs and not state.done:
                if state.batch == 0:
                    self.hidden = self.zero_state()
                    self.windows = self.cfg.epoch_windows(self.train[0].shape[0], state.epoch)
                    reseed(self.cfg.seed, state.epoch, 0)
                    if state.epoch == self.cfg.epochs + 1:
                        self.start_finetune(state)
                self.train_epoch(state)
                self.end_epoch(state)

    def start_finetune(self, state):
        """finetune.py: from the best weights, averaging anew, for finetune_epochs at most."""
        self.model.load_parameters(str(self.ckpt.best_path(state.best_epoch)), ctx=self.ctxs)
        self.start_average(state)
        state.history = []
        log.info("fine-tuning from the weights of epoch %d, averaging from now on",
                 state.best_epoch)

    def start_average(self, state):
        self.average = Average(self.params, self.ctxs[0])
        state.averaging_from = state.epoch if state.batch == 0 else state.epoch + 1

    def step(self, start, length):
        """One window on every device; returns its loss sum and gradient norm, left on device."""
        self.hidden = [[s.detach() for s in h] for h in self.hidden]
        with autograd.record():
            losses, objectives = window_loss(self.net, self.train, self.hidden, start, length)
        autograd.backward(objectives)
        self.trainer.allreduce_grads()  # every device now holds the summed gradient
        max_norm = self.cfg.max_norm(self.batch_size, length)
        norms = [global_norm([p.grad(c) for p in self.params]) for c in self.ctxs]
        for c, norm, no_decay in zip(self.ctxs, norms, self.no_decay, strict=True):
            clipped_sgd(self.params, c, norm, max_norm, self.trainer.learning_rate,
                        self.batch_size, no_decay, self.cfg.decay(length))
        if self.average is not None:
            self.average.update()
        ctx = self.ctxs[0]
        return nd.add_n(*[loss.as_in_context(ctx) for loss in losses]), norms[0], length

    def train_epoch(self, state):
        pending, clock = [], time.monotonic()
        for i in range(state.batch, len(self.windows)):
            pending.append(self.step(*self.windows[i]))
            if len(pending) == self.cfg.log_interval or i == len(self.windows) - 1 or self.stop:
                self.report(state, pending, clock)
                pending = []
                if self.stop:
                    self.halt(state)
                if i + 1 < len(self.windows) and self.checkpoint_due():
                    self.save(state)
                clock = time.monotonic()
        self.progress.end_epoch()

    def report(self, state, pending, clock):
        """The one host sync per report: check the losses and norms, then show progress."""
        losses = nd.concat(*[p[0] for p in pending], dim=0).asnumpy().astype(np.float64)
        norms = nd.concat(*[p[1] for p in pending], dim=0).asnumpy()
        bad = ~(np.isfinite(losses) & np.isfinite(norms))
        if bad.any():
            i = int(np.argmax(bad))
            what, value = ("loss", losses[i]) if not np.isfinite(losses[i]) else (
                "gradient norm", norms[i])
            self.diverged(state, state.batch + i + 1, what, value)
        tokens = sum(p[2] for p in pending) * self.batch_size
        seconds = time.monotonic() - clock
        loss_sum = float(losses.sum())
        loss = loss_sum / tokens
        state.batch += len(pending)
        state.loss_sum += loss_sum
        state.tokens += tokens
        state.seconds += seconds
        state.tokens_seen += tokens
        state.progress.append({"epoch": state.epoch, "batch": state.batch,
                               "tokens_seen": state.tokens_seen, "lr": state.lr,
                               "train_loss": loss, "train_ppl": perplexity(loss)})
        self.progress.report(state, len(self.windows), loss, tokens, seconds, len(pending))

    def halt(self, state):
        self.save(state)
        raise Stopped(f"stopped by {signal.Signals(self.stop[0]).name} at epoch {state.epoch} "
                      f"after {state.batch} of {len(self.windows)} windows; checkpoint saved in "
                      f"{self.ckpt.folder}: run the same command to resume", self.stop[0])

    def diverged(self, state, batch, what, value):
        record = self.ckpt.load()
        kept = (f"the last good checkpoint (epoch {record['state']['epoch']} after "
                f"{record['state']['batch']} windows) stays in {self.ckpt.folder}; delete it to "
                "start over" if record else "no checkpoint was written")
        raise RnnlmError(f"training {what} became {value} at epoch {state.epoch} batch {batch}: "
                         f"lower --lr (now {state.lr:g}) or --clip (now {self.cfg.clip:g}); {kept}")

    def validate(self):
        """Validation loss of the weights the run would keep: the average, once it averages."""
        if self.average is None:
            return split_loss(self.eval_net, self.valid, self.cfg.bptt)[0]
        with self.average.swapped_in(self.ctxs):
            return split_loss(self.eval_net, self.valid, self.cfg.bptt)[0]

    def end_epoch(self, state):
        valid_loss = self.validate()
        if not math.isfinite(valid_loss):
            self.diverged(state, len(self.windows), "validation loss", valid_loss)
        train_loss, tok_s = state.loss_sum / state.tokens, state.tokens / max(state.seconds, 1e-9)
        state.metrics.append({
            "epoch": state.epoch, "lr": state.lr, "train_loss": train_loss,
            "train_ppl": perplexity(train_loss), "valid_loss": valid_loss,
            "valid_ppl": perplexity(valid_loss), "seconds": state.seconds, "tokens_per_s": tok_s,
            "tokens_seen": state.tokens_seen})
        log.info("end of epoch %3d | %8.1f s | %8.0f tok/s | train ppl %9.2f | valid ppl %9.2f",
                 state.epoch, state.seconds, tok_s, perplexity(train_loss), perplexity(valid_loss))
        self.schedule(state, valid_loss)
        state.epoch, state.batch, state.loss_sum, state.tokens, state.seconds = (
            state.epoch + 1, 0, 0.0, 0, 0.0)
        self.save(state)  # with metrics.csv, in the checkpoint: not the declared output, since a
        # killed job must leave nothing that Snakemake would find incomplete and refuse to rerun

    def schedule(self, state, valid_loss):
        """Keep the best weights; nt-asgd: start averaging, or (fine-tuning) stop, when
        validation stalls; plateau: on no improvement, lr x0.25 and (restore_best) back to the
        best weights."""
        if state.best_loss is None or valid_loss < state.best_loss:
            state.best_loss, state.best_epoch = valid_loss, state.epoch
            if self.average is None:
                self.ckpt.save_best(self.model, state.epoch)
            else:
                with self.average.swapped_in(self.ctxs):
                    self.ckpt.save_best(self.model, state.epoch)
        stalled = should_average(state.history, valid_loss, self.cfg.nonmono)
        state.history.append(valid_loss)
        if state.epoch > self.cfg.epochs:  # fine-tuning: finetune.py's "Done!"
            state.done = stalled
            return
        if self.cfg.optimizer == "nt-asgd":  # lr stays: the average anneals
            if self.average is None and stalled:
                self.start_average(state)
                log.info("validation stalled: averaging the weights from epoch %d on",
                         state.epoch + 1)
        elif state.best_epoch != state.epoch and self.cfg.lr_schedule == "plateau":
            state.lr *= PLATEAU_FACTOR
            if self.cfg.restore_best:
                self.model.load_parameters(str(self.ckpt.best_path(state.best_epoch)),
                                           ctx=self.ctxs)
                log.info("no improvement: lr %g, back to the weights of epoch %d", state.lr,
                         state.best_epoch)
            else:
                log.info("no improvement: lr %g, training on from these weights", state.lr)
        if self.cfg.lr_schedule == "fixed":
            state.lr = self.cfg.fixed_lr(state.epoch + 1)
        self.trainer.set_learning_rate(state.lr)

    def checkpoint_due(self):
        return time.monotonic() - self.saved_at >= 60 * self.cfg.checkpoint_minutes

    def save(self, state):
        self.count_wall_time(state)
        if self.average is not None:
            state.average_steps = self.average.steps
        self.ckpt.save(state, self.model, self.trainer, gather_states(self.hidden),
                       None if self.average is None else self.average.named())
        self.saved_at = time.monotonic()

    def count_wall_time(self, state):
        now = time.monotonic()
        state.wall_seconds += now - self.wall_mark
        self.wall_mark = now


def train(model_config, config, train_path, valid_path, out_dir, device="cpu", gpus=1):
    """Train, or resume, one model; write model.params/.json, metrics.csv and summary.json."""
    ctxs = contexts(device, gpus)
    check_writable(out_dir)
    train_parts = load_array(train_path, model_config.vocab_size, ctxs)
    valid_parts = load_array(valid_path, model_config.vocab_size, ctxs)
    check_one_window(train_path, train_parts, config.bptt)
    fingerprint = {**dataclasses.asdict(model_config), **config.hyperparameters(),
                   "train_sha256": digest(train_path), "valid_sha256": digest(valid_path)}
    ckpt = Checkpoint(Path(out_dir) / "checkpoint", fingerprint)
    saved = ckpt.load()  # refuses a checkpoint of other settings before any work
    mx.random.seed(config.seed)
    # row_sparse gradients skip the rows a window did not read; a weight decay reads them all
    model = RNNModel(model_config, sparse_grad=device == "cpu" and not config.wd)
    model.initialize_weights(ctxs)
    model.hybridize(static_alloc=True, static_shape=True)
    run = Run(config, model, ctxs, train_parts, valid_parts, ckpt)
    state = run.resume(saved) if saved else RunState(
        lr=config.fixed_lr(1) if config.lr_schedule == "fixed" else config.lr, started=now())
    run.fit(state)
    write_outputs(run, state, device)
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


def write_outputs(run, state, device):
    """The declared outputs of a finished run; summary.json last, as the mark of completion.

    Times: ``train_seconds`` counts the training windows only (each report interval, so neither
    validation nor checkpoints), ``tokens_per_s`` is training tokens over it: the throughput
    convention of the tutorial and the PyTorch example. ``wall_seconds`` is the whole run: its
    training, validation and checkpoints, in every attempt up to that attempt's last checkpoint.
    """
    out_dir = run.ckpt.folder.parent
    with atomic_path(out_dir / "model.params") as tmp:
        tmp.write_bytes(run.ckpt.best_path(state.best_epoch).read_bytes())
    save_model_config(run.model.config, out_dir / "model.json")
    write_metrics(out_dir / "metrics.csv", state.metrics)
    write_metrics(out_dir / "progress.csv", state.progress, PROGRESS)
    seconds = sum(row["seconds"] for row in state.metrics)
    tokens = sum(row["seconds"] * row["tokens_per_s"] for row in state.metrics)
    run.count_wall_time(state)
    threads = omp_threads()
    settings = {**dataclasses.asdict(run.model.config), **dataclasses.asdict(run.cfg),
                "batch_size": run.batch_size, "eval_batch_size": sum(p.shape[1] for p in run.valid)}
    data = {split: run.ckpt.fingerprint[f"{split}_sha256"] for split in ("train", "valid")}
    write_json(out_dir / "summary.json", {
        "hyperparameters": settings, "param_count": run.model.param_count(),
        "best_epoch": state.best_epoch, "best_valid_loss": state.best_loss,
        "averaged_from_epoch": state.averaging_from,
        "best_valid_ppl": perplexity(state.best_loss), "epochs": len(state.metrics),
        "train_seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9),
        "wall_seconds": state.wall_seconds, "threads": threads, "device": device,
        "gpus": len(run.ctxs) if device == "gpu" else 0,
        "provenance": {**environment(), "engine": ENGINE, "threads": threads,
                       "device": device, "seed": run.cfg.seed,
                       "settings_sha256": settings_digest(settings), "data_sha256": data,
                       "started": state.started, "finished": now(),
                       "wall_seconds": state.wall_seconds}})
