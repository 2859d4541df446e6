"""The segment passes of a dynamic evaluation, in this process or two or more at a time in worker
processes.

Each pass is one long chain of small steps (a segment's forward, backward and update) that a
second thread hardly shortens, and the grid's passes over validation are independent of each
other: on 2 cores, two passes at a time at one thread each ran 1.6 to 1.9 times as fast as one
after the other on PTB (benchmarks/README.md). The workers are spawned, not forked (MXNet's
engine threads do not survive a fork); each loads the model from the run folder and takes the
gradient statistics from the job, which computed them once.
"""

import contextlib
import logging
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from rnnlm.adapt.dynamic import Adapter
from rnnlm.device import contexts, load_array
from rnnlm.io import RnnlmError, log_to_stderr
from rnnlm.mx import nd
from rnnlm.trained import load_model, trained_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pass:
    """One pass over ``split``: the static model for lr 0, else the ``rule`` update at lr and
    decay; ``hidden``: whether its last-layer outputs are wanted (for the cache)."""

    split: str
    lr: float
    decay: float
    label: str
    hidden: bool = False


def run_pass(adapter, streams, job, rule, segment):
    """(job, log p of each target, the last layer's outputs or None, seconds)."""
    start = time.monotonic()
    logp, hidden = adapter.segment_pass(streams[job.split], segment,
                                        adapter.update(rule, job.lr, job.decay), job.label)
    return job, logp, hidden if job.hidden else None, time.monotonic() - start


_WORKER = {}  # a worker process's model, streams and settings, made once by _start


def _start(level, run_dir, paths, ms, rates, rule, segment, device):
    log_to_stderr(level)  # the job's level and format: the workers write into the job's log
    ctx = contexts(device)[0]
    model = load_model(trained_run(run_dir, "dynamic evaluation"), ctx)
    streams = {split: load_array(path, model.config.vocab_size, [ctx])[0]
               for split, path in paths.items()}
    adapter = Adapter(model, ctx, [nd.array(m, ctx=ctx) for m in ms],
                      [nd.array(r, ctx=ctx) for r in rates])
    _WORKER.update(adapter=adapter, streams=streams, rule=rule, segment=segment)


def _run(job):
    w = _WORKER
    return run_pass(w["adapter"], w["streams"], job, w["rule"], w["segment"])


@contextlib.contextmanager
def _one_thread_each():
    """Spawned workers inherit the environment: one OpenMP thread each (and the job's engine,
    which rnnlm.cli.args.use_threads chose before MXNet loaded)."""
    names = ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS")
    kept = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in kept.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


class Runner:
    """Runs Passes of one trained run: in this process with ``adapter`` when ``workers`` is 1,
    else in that many worker processes (``start``: what each loads, (run_dir, {split: path},
    MS and the rates as numpy arrays, rule, segment, device)). ``submit`` queues a pass;
    ``results`` yields each pass's result as it ends, those submitted meanwhile included, until
    none is left. A worker that dies (the OOM killer's SIGKILL) stops the job with a one-line
    error, where multiprocessing.Pool would wait for its result forever (CPython issue 22393)."""

    def __init__(self, adapter, streams, rule, segment, workers, start):
        self.adapter, self.streams, self.rule, self.segment = adapter, streams, rule, segment
        self.workers, self.start, self.pool = workers, start, None
        self.pending = []  # Passes here, futures with workers
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        if self.workers > 1:
            log.info("passes in %d worker processes, one thread each", self.workers)
            self.stack.enter_context(_one_thread_each())  # the pool spawns them as jobs come
            self.pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"),
                                            _start, (logging.getLogger().level, *self.start))
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.stack.close()

    def submit(self, job):
        self.pending.append(job if self.pool is None else self.pool.submit(_run, job))

    def idle(self):
        """Whether a worker has no pass to run: never in this process, whose one pass at a
        time is the one running."""
        return self.pool is not None and len(self.pending) < self.workers

    def results(self):
        if self.pool is None:
            while self.pending:
                yield run_pass(self.adapter, self.streams, self.pending.pop(0), self.rule,
                               self.segment)
            return
        try:
            while self.pending:
                ended, running = wait(self.pending, return_when=FIRST_COMPLETED)
                self.pending = [f for f in self.pending if f in running]  # in submission order
                for future in ended:
                    yield future.result()
        except BrokenProcessPool:
            raise RnnlmError(f"a worker process of dynamic evaluation died (killed, or out of "
                             f"memory: {self.workers} workers each hold a copy of the model); "
                             "give the job fewer threads or more memory, and run it again"
                             ) from None
