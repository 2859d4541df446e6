"""The training loop: epochs of windows, each window one step, reports, validation, the lr
schedule, NT-ASGD's average and checkpoints. ``Run`` holds the live objects of one run,
``RunState`` (rnnlm.checkpoint) what survives a restart; rnnlm.train sets a run up and writes its
outputs, rnnlm.step holds the step's pieces.
"""

import logging
import math
import signal
import time
import zlib

import numpy as np

from rnnlm.awd.asgd import Average, should_average
from rnnlm.checkpoint import gather_states, restore
from rnnlm.io import RnnlmError
from rnnlm.live import NAME as LIVE
from rnnlm.mx import autograd, gluon, nd
from rnnlm.mx import mxnet as mx
from rnnlm.progress import Progress, Stopped, stop_signals
from rnnlm.step import (
    clipped_sgd,
    eval_graph,
    global_norm,
    loss_graph,
    perplexity,
    split_loss,
    tail_capacity,
    window_loss,
)

log = logging.getLogger("rnnlm.train")

PLATEAU_FACTOR = 0.25  # the tutorial's: lr x0.25 and back to the best weights when valid stalls


class Diverged(RnnlmError):
    """A loss or gradient norm that is not finite: the run cannot go on at these settings."""


def clocks():
    """Wall time and this process's CPU time (all its threads), to time windows by both."""
    return time.monotonic(), time.process_time()


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
                              static_shape=not config.variable_bptt,
                              capacity=tail_capacity(model.config, train_parts,
                                                     self.every_window(train_parts[0].shape[0])))
        self.eval_net = eval_graph(model, valid_parts, config.bptt)  # other shapes, no gradients
        self.no_decay = [nd.zeros((1,), ctx=c) for c in ctxs]
        self.params = list(model.collect_params().values())
        self.batch_size = sum(p.shape[1] for p in train_parts)
        self.windows = config.epoch_windows(train_parts[0].shape[0], 1)
        self.average = None  # NT-ASGD's running mean of the weights, once it averages
        self.hidden = self.zero_state()
        self.progress = Progress(ckpt.path(LIVE), config.epochs + config.finetune_epochs)
        self.saved_at = self.wall_mark = time.monotonic()
        self.stop = []  # signals caught: stop at the next window, after a checkpoint

    def every_window(self, steps):
        """The windows of every epoch the run trains (the same in each, unless variable)."""
        epochs = self.cfg.epochs + self.cfg.finetune_epochs if self.cfg.variable_bptt else 1
        return [w for epoch in range(1, epochs + 1) for w in self.cfg.epoch_windows(steps, epoch)]

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
        pending, clock = [], clocks()
        for i in range(state.batch, len(self.windows)):
            pending.append(self.step(*self.windows[i]))
            if len(pending) == self.cfg.log_interval or i == len(self.windows) - 1 or self.stop:
                self.report(state, pending, clock)
                pending = []
                if self.stop:
                    self.halt(state)
                if i + 1 < len(self.windows) and self.checkpoint_due():
                    self.save(state)
                clock = clocks()
        self.progress.end_epoch()

    def report(self, state, pending, clock):
        """The one host sync per report: check the losses and norms, then show progress.
        ``clock``: the wall and CPU clocks when the windows began (``clocks``)."""
        losses = nd.concat(*[p[0] for p in pending], dim=0).asnumpy().astype(np.float64)
        norms = nd.concat(*[p[1] for p in pending], dim=0).asnumpy()
        bad = ~(np.isfinite(losses) & np.isfinite(norms))
        if bad.any():
            i = int(np.argmax(bad))
            what, value = ("loss", losses[i]) if not np.isfinite(losses[i]) else (
                "gradient norm", norms[i])
            self.diverged(state, state.batch + i + 1, what, value)
        tokens = sum(p[2] for p in pending) * self.batch_size
        seconds = time.monotonic() - clock[0]
        state.cpu_seconds += time.process_time() - clock[1]
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
        raise Diverged(f"training {what} became {value} at epoch {state.epoch} batch {batch}: "
                         f"lower --lr (now {state.lr:g}) or --clip (now {self.cfg.clip:g}); {kept}")

    def validate(self):
        """Validation loss of the weights the run would keep: the average, once it averages."""
        if self.average is None:
            return split_loss(self.eval_net, self.valid, self.cfg.bptt)[0]
        with self.average.swapped_in(self.ctxs):
            return split_loss(self.eval_net, self.valid, self.cfg.bptt)[0]

    def end_epoch(self, state):
        began = time.monotonic()
        valid_loss = self.validate()
        self.progress.valid_seconds = time.monotonic() - began
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
