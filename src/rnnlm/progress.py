"""How a long training run talks to the outside: its progress on a terminal or in a cluster log,
and in its live status file for `rnnlm watch` (rnnlm.live), and the stop signals (a scheduler's
SIGTERM, Ctrl-C) it answers by saving its checkpoint first.
"""

import contextlib
import logging
import signal
import sys
import threading

from rnnlm.io import RnnlmError
from rnnlm.live import write_live
from rnnlm.step import perplexity

log = logging.getLogger("rnnlm.train")  # the trainer's lines, whichever module writes them


class Stopped(RnnlmError):
    """A run asked to stop (SIGTERM from a scheduler, Ctrl-C) that saved its checkpoint first."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.exit_code = 128 + signum  # what the shell reports for a process the signal killed


@contextlib.contextmanager
def stop_signals(caught):
    """While training, SIGTERM and SIGINT only append to ``caught``; the loop acts on it."""
    if threading.current_thread() is not threading.main_thread():  # handlers need the main one
        yield
        return
    stops = (signal.SIGTERM, signal.SIGINT)
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in stops}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class Progress:
    """A bar on a terminal; else one fixed-width log line per report (cluster logs). Either way
    the live status file at ``live`` is rewritten, for a watcher: ``epochs`` is the most the run
    trains (fine-tuning may stop it earlier)."""

    def __init__(self, live, epochs, stream=None):
        self.live, self.epochs = live, epochs
        self.valid_seconds = None  # the last validation's time, once one ran (for the ETA)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def report(self, state, total, loss, tokens, seconds, windows_done):
        ppl, tok_s = perplexity(loss), tokens / max(seconds, 1e-9)
        last = state.metrics[-1] if state.metrics else {}
        write_live(self.live, epoch=state.epoch, epochs=self.epochs, window=state.batch,
                   windows=total, tokens_per_s=tok_s, train_ppl=ppl,
                   valid_ppl=last.get("valid_ppl"),
                   seconds_per_window=state.seconds / max(state.batch, 1),
                   valid_seconds=self.valid_seconds)
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
