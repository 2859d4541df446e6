"""throughput.py's side of the PyTorch line: benchmarks/pytorch_loop.py in a worker process.

torch is never a dependency of the pipeline (its Linux wheels on PyPI bring gigabytes of CUDA
libraries), so the loop runs under whichever Python has it, ``--torch-python`` (default: this
one), and is driven one chunk of windows at a time, alternating with the MXNet loops. Before any
timing the worker must show the trainer's parameter count and, from the trainer's initial
weights with dropout off, its first-window loss (rtol 1e-4): else the line is refused.
"""

import json
import subprocess
from pathlib import Path

import numpy as np

WORKER = Path(__file__).resolve().parent / "pytorch_loop.py"
GET_TORCH = ("for it, make a CPU-only torch environment (PyPI's Linux wheels pull gigabytes of "
             "CUDA): python3 -m venv ENV && ENV/bin/pip install numpy torch --index-url "
             "https://download.pytorch.org/whl/cpu, then pass --torch-python ENV/bin/python")
RTOL = 1e-4  # first-window losses of the same weights must agree this closely


class Skipped(Exception):
    """No PyTorch line: torch is not there (a note), or the worker failed (an error)."""

    exit_code = 0


class Refused(Skipped):
    """The PyTorch model does not compute the trainer's function: its figures would mislead."""

    exit_code = 1


class PyTorchLoop:
    """The worker process of ``python`` (environment ``env``, default this one's), set up as
    ``setup`` says (the worker's docstring)."""

    def __init__(self, python, setup, env=None):
        try:
            self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env)
        except OSError as err:
            raise Skipped(f"no PyTorch line: --torch-python {python}: {err.strerror}; "
                          f"{GET_TORCH}") from None
        hello = self.receive()
        if "missing" in hello:
            self.close()
            raise Skipped(f"no PyTorch line: {python} has no torch ({hello['missing']}); "
                          f"{GET_TORCH}")
        self.version = hello["torch"]
        self.setup = self.ask(cmd="setup", **setup)
        self.peak_rss_mb = self.setup["peak_rss_mb"]

    def receive(self):
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise Skipped("no PyTorch line: its worker ended without answering (its error is "
                          "above)")
        reply = json.loads(line)
        if "error" in reply:
            self.close()
            raise Skipped(f"no PyTorch line: its worker failed: {reply['error']}")
        self.peak_rss_mb = reply.get("peak_rss_mb")
        return reply

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def check(self, params, first_loss):
        """Refuse a model of another size, or one whose loss from the same weights differs."""
        theirs = self.setup
        if theirs["params"] != params:
            self.close()
            raise Refused(f"PyTorch line refused: its model has {theirs['params']:,} parameters, "
                          f"the trainer's {params:,}: not the same model")
        if not np.isclose(theirs["first_loss"], first_loss, rtol=RTOL, atol=0):
            self.close()
            raise Refused(f"PyTorch line refused: from the same weights, dropout off, its first "
                          f"window's loss is {theirs['first_loss']:.6g}, the trainer's "
                          f"{first_loss:.6g} (rtol {RTOL:g}): not the same function")

    def steps(self, n):
        return np.array(self.ask(cmd="train", n=int(n))["losses"])

    def evaluate(self, rows, window):
        return self.ask(cmd="eval", rows=int(rows), window=int(window))["loss"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the worker's loop ends at the end of its input
            self.proc.wait(timeout=60)
