"""Train stage: truncated back-propagation through time with the MXNet Gluon tutorial's semantics.

Per window of ``bptt`` steps the token losses of all (bptt x batch) rows are summed and
back-propagated, gradients are clipped to a global norm of ``clip * bptt * batch``, and SGD steps
at ``lr`` per example (the trainer divides the summed gradient by the batch): the tutorial's
hyperparameters mean the same here. The hidden state flows from window to window, detached, and
restarts at zero each epoch. On several devices each batch's columns are split across them and
the gradients summed before clipping, so the step is the same as on one.

Nothing waits for the device per window: losses and gradient norms stay there until a report
every ``log_interval`` windows, where they are checked to be finite.
"""

import dataclasses
import logging
import math
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

import rnnlm
from rnnlm.checkpoint import Checkpoint, RunState, digest, gather_states, restore, write_metrics
from rnnlm.device import contexts, load_array, omp_threads
from rnnlm.io import RnnlmError, atomic_path, write_json
from rnnlm.model import RNNModel, save_model_config
from rnnlm.mx import autograd, gluon, nd
from rnnlm.mx import mxnet as mx

log = logging.getLogger(__name__)

SCHEDULES = ("plateau", "fixed")
PLATEAU_FACTOR = 0.25  # the tutorial's: lr x0.25 and back to the best weights when valid stalls


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    lr: float = 1.0  # SGD step per example: the summed gradient is divided by the batch size
    clip: float = 0.2  # cap on the global gradient norm per token (scaled by bptt * batch)
    epochs: int = 1
    bptt: int = 5  # window length of truncated back-propagation
    seed: int = 1
    lr_schedule: str = "plateau"  # or "fixed": epoch e at lr * decay_factor ** (e - decay_after)
    decay_after: int = 0
    decay_factor: float = 0.25
    max_batches: int | None = None  # cap on windows per epoch (smoke tests, benchmarks)
    log_interval: int = 200  # windows between reports (the only host syncs)
    checkpoint_minutes: float = 10.0  # also checkpoint mid-epoch, at a report, this often

    def __post_init__(self):
        if self.lr_schedule not in SCHEDULES:
            raise RnnlmError(f"unknown lr schedule {self.lr_schedule!r}; choose plateau or fixed")
        for name in ("epochs", "bptt", "log_interval", "max_batches"):
            if (getattr(self, name) or 1) < 1:
                raise RnnlmError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "clip", "decay_factor"):
            if not getattr(self, name) > 0:
                raise RnnlmError(f"{name} must be positive, got {getattr(self, name)}")

    def hyperparameters(self):
        """The settings a result depends on (not how often it reports or checkpoints)."""
        fields = dataclasses.asdict(self)
        return {k: v for k, v in fields.items() if k not in ("log_interval", "checkpoint_minutes")}

    def fixed_lr(self, epoch):
        return self.lr * self.decay_factor ** max(0, epoch - self.decay_after)


def windows(steps, bptt):
    """(start, length) of each window over an array of ``steps`` rows; targets are one row down.

        row      0 1 2 3 4 5 6 7 8 9        steps 10, bptt 4
        inputs   [0 . . 3][4 . . 7][8]
        targets    [1 . . 4][5 . . 8][9]
    """
    return [(i, min(bptt, steps - 1 - i)) for i in range(0, steps - 1, bptt)]


def window_loss(model, loss_fn, parts, states, start, length):
    """Token losses of one window, one (length * B_k,) array per device; updates ``states``."""
    losses = []
    for k, part in enumerate(parts):
        x, y = part[start:start + length], part[start + 1:start + 1 + length]
        logits, states[k] = model(x, states[k])  # (T, B_k, V)
        losses.append(loss_fn(logits.reshape((-3, -1)), y.reshape((-1,))))  # rows (T * B_k, V)
    return losses


def split_loss(model, parts, bptt):
    """Mean token loss over a whole array in predict mode, the state carried; and its tokens."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    states = [model.begin_state(p.shape[1], p.context) for p in parts]
    totals = [nd.zeros((1,), ctx=p.context, dtype="float64") for p in parts]
    steps = parts[0].shape[0]
    for start, length in windows(steps, bptt):
        losses = window_loss(model, loss_fn, parts, states, start, length)
        for total, loss in zip(totals, losses, strict=True):
            total += loss.sum().astype("float64")
    tokens = (steps - 1) * sum(p.shape[1] for p in parts)
    return sum(float(t.asscalar()) for t in totals) / tokens, tokens


def clip_global_norm(grads, max_norm):
    """Scale one device's ``grads`` to a global norm of at most ``max_norm``; return the norm.

    Unlike gluon.utils.clip_global_norm it never brings the norm to the host: the scale
    min(1, max_norm / norm) stays an array, so Python never waits for the device here.
    """
    norm = nd.sqrt(nd.multi_sum_sq(*grads, num_arrays=len(grads)).sum())  # (1,)
    scale = nd.minimum(max_norm / (norm + 1e-8), 1.0)
    for g in grads:
        nd.broadcast_mul(g, scale, out=g)
    return norm


def perplexity(loss):
    return math.exp(loss) if loss < 700 else math.inf  # a finite loss can still overflow exp


def reseed(seed, epoch, batch):
    """Dropout noise from a fixed point per (epoch, batch), so a resumed epoch draws the same."""
    mx.random.seed(zlib.crc32(f"{seed}:{epoch}:{batch}".encode()) % 2**31)


class Progress:
    """A bar on a terminal; else one fixed-width log line per report (cluster logs)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def report(self, state, total, loss, tokens, seconds, windows_done):
        ppl, tok_s = perplexity(loss), tokens / max(seconds, 1e-9)
        if self.tty:
            bar = "#" * (30 * state.batch // total)
            self.stream.write(f"\repoch {state.epoch} [{bar:<30}] {state.batch}/{total} "
                              f"loss {loss:.3f} ppl {ppl:.1f} {tok_s:,.0f} tok/s ")
            self.stream.flush()
        else:
            log.info("epoch %3d | %6d/%6d batches | lr %8.4g | %7.2f ms/batch | %8.0f tok/s | "
                     "loss %6.3f | ppl %9.2f", state.epoch, state.batch, total, state.lr,
                     1000 * seconds / windows_done, tok_s, loss, ppl)

    def end_epoch(self):
        if self.tty:
            self.stream.write("\n")


class Run:
    """The live objects of one training run; ``RunState`` holds what survives a restart."""

    def __init__(self, config, model, ctxs, train_parts, valid_parts, ckpt):
        self.cfg, self.model, self.ctxs, self.ckpt = config, model, ctxs, ckpt
        self.train, self.valid = train_parts, valid_parts
        self.trainer = gluon.Trainer(model.collect_params(), "sgd",
                                     {"learning_rate": config.lr, "momentum": 0.0, "wd": 0.0},
                                     kvstore="device", update_on_kvstore=False)
        self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        self.params = list(model.collect_params().values())
        self.batch_size = sum(p.shape[1] for p in train_parts)
        self.windows = windows(train_parts[0].shape[0], config.bptt)[:config.max_batches]
        self.hidden = self.zero_state()
        self.progress = Progress()
        self.saved_at = time.monotonic()

    def zero_state(self):
        return [self.model.begin_state(p.shape[1], p.context) for p in self.train]

    def resume(self, saved):
        state, self.hidden = restore(saved, self.ckpt.folder, self.model, self.trainer, self.ctxs)
        log.info("resuming from %s: epoch %d after %d of %d windows", self.ckpt.folder,
                 state.epoch, state.batch, len(self.windows))
        reseed(self.cfg.seed, state.epoch, state.batch)
        return state

    def fit(self, state):
        while state.epoch <= self.cfg.epochs:
            if state.batch == 0:
                self.hidden = self.zero_state()
                reseed(self.cfg.seed, state.epoch, 0)
            self.train_epoch(state)
            self.end_epoch(state)

    def step(self, start, length):
        """One window on every device; returns its loss sum and gradient norm, left on device."""
        self.hidden = [[s.detach() for s in h] for h in self.hidden]
        with autograd.record():
            losses = window_loss(self.model, self.loss_fn, self.train, self.hidden, start, length)
        autograd.backward(losses)
        self.trainer.allreduce_grads()  # every device now holds the summed gradient
        max_norm = self.cfg.clip * self.cfg.bptt * self.batch_size
        norms = [clip_global_norm([p.grad(c) for p in self.params], max_norm) for c in self.ctxs]
        self.trainer.update(self.batch_size)
        ctx = self.ctxs[0]
        return nd.add_n(*[loss.sum().as_in_context(ctx) for loss in losses]), norms[0], length

    def train_epoch(self, state):
        pending, clock = [], time.monotonic()
        for i in range(state.batch, len(self.windows)):
            pending.append(self.step(*self.windows[i]))
            if len(pending) == self.cfg.log_interval or i == len(self.windows) - 1:
                self.report(state, pending, clock)
                pending = []
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
        state.batch += len(pending)
        state.loss_sum += float(losses.sum())
        state.tokens += tokens
        state.seconds += seconds
        self.progress.report(state, len(self.windows), losses.sum() / tokens, tokens, seconds,
                             len(pending))

    def diverged(self, state, batch, what, value):
        record = self.ckpt.load()
        kept = (f"the last good checkpoint (epoch {record['state']['epoch']} after "
                f"{record['state']['batch']} windows) stays in {self.ckpt.folder}; delete it to "
                "start over" if record else "no checkpoint was written")
        raise RnnlmError(f"training {what} became {value} at epoch {state.epoch} batch {batch}: "
                         f"lower --lr (now {state.lr:g}) or --clip (now {self.cfg.clip:g}); {kept}")

    def end_epoch(self, state):
        valid_loss, _ = split_loss(self.model, self.valid, self.cfg.bptt)
        if not math.isfinite(valid_loss):
            self.diverged(state, len(self.windows), "validation loss", valid_loss)
        train_loss, tok_s = state.loss_sum / state.tokens, state.tokens / max(state.seconds, 1e-9)
        state.metrics.append({
            "epoch": state.epoch, "lr": state.lr, "train_loss": train_loss,
            "train_ppl": perplexity(train_loss), "valid_loss": valid_loss,
            "valid_ppl": perplexity(valid_loss), "seconds": state.seconds, "tokens_per_s": tok_s})
        log.info("end of epoch %3d | %8.1f s | %8.0f tok/s | train ppl %9.2f | valid ppl %9.2f",
                 state.epoch, state.seconds, tok_s, perplexity(train_loss), perplexity(valid_loss))
        self.schedule(state, valid_loss)
        state.epoch, state.batch, state.loss_sum, state.tokens, state.seconds = (
            state.epoch + 1, 0, 0.0, 0, 0.0)
        self.save(state)
        write_metrics(self.ckpt.folder.parent / "metrics.csv", state.metrics)

    def schedule(self, state, valid_loss):
        """Keep the best weights; plateau: on no improvement, lr x0.25 and back to the best."""
        if state.best_loss is None or valid_loss < state.best_loss:
            state.best_loss, state.best_epoch = valid_loss, state.epoch
            self.ckpt.save_best(self.model, state.epoch)
        elif self.cfg.lr_schedule == "plateau":
            state.lr *= PLATEAU_FACTOR
            self.model.load_parameters(str(self.ckpt.best_path(state.best_epoch)), ctx=self.ctxs)
            log.info("no improvement: lr %g, back to the weights of epoch %d", state.lr,
                     state.best_epoch)
        if self.cfg.lr_schedule == "fixed":
            state.lr = self.cfg.fixed_lr(state.epoch + 1)
        self.trainer.set_learning_rate(state.lr)

    def checkpoint_due(self):
        return time.monotonic() - self.saved_at >= 60 * self.cfg.checkpoint_minutes

    def save(self, state):
        self.ckpt.save(state, self.model, self.trainer, gather_states(self.hidden))
        self.saved_at = time.monotonic()


def train(model_config, config, train_path, valid_path, out_dir, device="cpu", gpus=1):
    """Train, or resume, one model; write model.params/.json, metrics.csv and summary.json."""
    ctxs = contexts(device, gpus)
    train_parts = load_array(train_path, model_config.vocab_size, ctxs)
    valid_parts = load_array(valid_path, model_config.vocab_size, ctxs)
    fingerprint = {**dataclasses.asdict(model_config), **config.hyperparameters(),
                   "train_sha256": digest(train_path), "valid_sha256": digest(valid_path)}
    ckpt = Checkpoint(Path(out_dir) / "checkpoint", fingerprint)
    saved = ckpt.load()  # refuses a checkpoint of other settings before any work
    mx.random.seed(config.seed)
    model = RNNModel(model_config)
    model.initialize_weights(ctxs)
    model.hybridize(static_alloc=True, static_shape=True)
    run = Run(config, model, ctxs, train_parts, valid_parts, ckpt)
    state = run.resume(saved) if saved else RunState(lr=config.fixed_lr(1) if
                                                      config.lr_schedule == "fixed" else config.lr)
    run.fit(state)
    write_outputs(run, state, device)
    ckpt.remove()
    return state


def write_outputs(run, state, device):
    """The declared outputs of a finished run; summary.json last, as the mark of completion."""
    out_dir = run.ckpt.folder.parent
    with atomic_path(out_dir / "model.params") as tmp:
        tmp.write_bytes(run.ckpt.best_path(state.best_epoch).read_bytes())
    save_model_config(run.model.config, out_dir / "model.json")
    write_metrics(out_dir / "metrics.csv", state.metrics)
    seconds = sum(row["seconds"] for row in state.metrics)
    tokens = sum(row["seconds"] * row["tokens_per_s"] for row in state.metrics)
    write_json(out_dir / "summary.json", {
        "hyperparameters": {**dataclasses.asdict(run.model.config), **dataclasses.asdict(run.cfg),
                            "batch_size": run.batch_size,
                            "eval_batch_size": sum(p.shape[1] for p in run.valid)},
        "param_count": run.model.param_count(), "best_epoch": state.best_epoch,
        "best_valid_loss": state.best_loss, "best_valid_ppl": perplexity(state.best_loss),
        "epochs": len(state.metrics), "train_seconds": seconds,
        "tokens_per_s": tokens / max(seconds, 1e-9),
        "threads": omp_threads(), "device": device, "gpus": len(run.ctxs) if device == "gpu" else 0,
        "versions": {"python": platform.python_version(), "mxnet": mx.__version__,
                     "numpy": np.__version__, "rnnlm": rnnlm.__version__}})
