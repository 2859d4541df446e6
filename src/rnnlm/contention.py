"""Under what conditions a run's speed was measured, and whether they distort it.

Tokens per second count wall time, which another job on the same cores stretches: a run timed
while the machine was busy looks slow for reasons that are not its own. So each run records its
process CPU time against its training time (CPU-seconds per wall-second, to compare with the
threads it was given), the 1-minute load average when it started and when it finished, and the
machine's CPU count; the tables and the throughput figure mark the runs ``contended`` judges
timed under contention, and give tokens per CPU-second, which sharing the cores barely moves.
"""

import math
import os

QUIET_SHARE = 0.5  # a CPU-bound trainer given less than half a core per second was kept waiting


def load_average():
    """The machine's 1-minute load average, or None where the system does not tell."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def conditions(cpu_seconds, train_seconds, tokens, threads, load_start):
    """summary.json's ``conditions``: what the machine was doing while the run trained."""
    return {"cpu_seconds": cpu_seconds, "cpu_per_wall": cpu_seconds / max(train_seconds, 1e-9),
            "tokens_per_cpu_s": tokens / cpu_seconds if cpu_seconds > 0 else None,
            "threads": threads, "cpus": os.cpu_count(), "load_start": load_start,
            "load_end": load_average()}


def contended(record, device="cpu"):
    """Why a run's timing is distorted by contention (a short text), or '' when nothing says
    so. ``record`` is summary.json's ``conditions``, or None for a run from before it existed.

    A load average above the CPU count means more threads wanted to run than there were cores;
    a CPU run that got under half a core per second of training waited for them (a GPU run
    waits for its device, so its share says nothing).
    """
    if not record:
        return ""
    cpus, share = record.get("cpus"), record.get("cpu_per_wall")
    loads = [x for x in (record.get("load_start"), record.get("load_end")) if x is not None]
    why = []
    if cpus and loads and max(loads) > cpus:
        why.append(f"load {max(loads):.1f} on {cpus} CPUs")
    if device == "cpu" and share is not None and math.isfinite(share) and share < QUIET_SHARE:
        why.append(f"{share:.2f} CPU-s per s")
    return "; ".join(why)
