"""What several subcommands share: argument types, the device and thread flags, and setting
MXNet's threads and engine before a stage loads it."""

import argparse
import os


def count(text):
    """An integer >= 1 (a count of attempts, words, occurrences)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not an integer >= 1")
    return value


def positive(text):
    """A number > 0 (a cache theta, a published perplexity)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number > 0")
    return value


def fraction(text):
    """A number in [0, 1) (a cache lambda)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a number in [0, 1)")
    return value


def nonnegative(text):
    """A finite number >= 0 (a dynamic evaluation lr or decay)."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0")
    return value


def use_threads(threads, device="cpu"):
    """MXNet reads its CPU thread counts and its engine once, when libmxnet loads: set them before
    a stage module imports mxnet (the handlers import their stage lazily for this). --threads 0
    keeps MXNet's counts.

    On the CPU the operators run one after another in the calling thread (NaiveEngine): the
    threaded engine's hand-offs cost a fifth of a small window on 2 cores and buy nothing there
    (benchmarks/README.md). GPUs keep the threaded engine, which overlaps copies and kernels. A
    MXNET_ENGINE_TYPE set by the user wins."""
    if device == "cpu":
        os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")
    if threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MXNET_OMP_MAX_THREADS"] = str(threads)
        os.environ["MXNET_CPU_WORKER_NTHREADS"] = "1"  # one engine worker runs n-thread operators


def add_threads(p, whose="MXNet's operators", default="MXNet's own choice"):
    p.add_argument("--threads", type=int, default=0,
                   help=f"CPU threads for {whose} (default 0: {default})")


def add_device_flags(p):
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--gpus", type=int, default=1,
                   help="with --device gpu: GPUs to split each batch across (data parallel)")
    add_threads(p)


def add_memory_flag(p):
    p.add_argument("--memory-mb", type=count, default=None,
                   help="memory the job may use, in MB (the workflow passes its mem_mb); a "
                        "model whose estimate (rnnlm.memory) is larger is refused before it "
                        "allocates anything (default: the machine's memory)")
