"""throughput.py's ``--profile``: where a trainer window goes, operator by operator.

MXNet's aggregate table sums and averages each operator's calls, so on a busy machine a few
preempted calls inflate it; the table written first here takes each operator's median call
instead, times its calls per window. MXNet 1.9.1 traces most calls twice (the same operator and
thread, overlapping in time; calls of an operator never overlap): the second is dropped.
"""

import json
import statistics
from collections import defaultdict


def calls(trace_events):
    """(name, start_us, duration_us) of each operator call in a chrome-trace event list."""
    open_calls, out = {}, []
    for e in trace_events:
        if e.get("cat") != "operator" or e["ph"] not in "BE":
            continue
        key = (e["name"], e.get("tid"))
        if e["ph"] == "B":
            open_calls.setdefault(key, []).append(e["ts"])
        elif open_calls.get(key):
            start = open_calls[key].pop()
            out.append((e["name"], start, e["ts"] - start))
    out.sort(key=lambda c: c[1])
    kept, busy_until = [], {}
    for name, start, duration in out:
        if start >= busy_until.get(name, start):  # not inside this operator's previous call
            kept.append((name, start, duration))
            busy_until[name] = start + duration
    return kept


def median_table(trace_events, windows):
    """Per operator: median ms per call, calls per window, and their product, largest first."""
    durations = defaultdict(list)
    for name, _, duration in calls(trace_events):
        durations[name].append(duration / 1000)
    rows = sorted(((statistics.median(d) * len(d) / windows, statistics.median(d),
                    len(d) / windows, name) for name, d in durations.items()), reverse=True)
    lines = [f"{'operator':40s} {'ms/window':>10s} {'ms/call':>9s} {'calls':>6s}"]
    lines += [f"{name[:40]:40s} {total:10.3f} {per:9.3f} {n:6.1f}" for total, per, n, name in rows]
    lines.append(f"{'sum of medians':40s} {sum(r[0] for r in rows):10.3f}")
    return "\n".join(lines) + "\n"


def profile(trainer, batches, path):
    """MXNet's profile of ``batches`` windows of ``trainer``: the median table, then MXNet's."""
    from rnnlm.mx import mxnet as mx

    trace = path.with_suffix(".trace.json")
    mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=str(trace))
    mx.profiler.set_state("run")
    trainer.steps(batches)
    mx.profiler.set_state("stop")
    aggregate = mx.profiler.dumps(reset=True)
    mx.profiler.dump()
    events = json.loads(trace.read_text())["traceEvents"]
    path.write_text(f"{batches} windows of the trainer; median call per operator\n"
                    + median_table(events, batches) + "\nMXNet's aggregate table\n" + aggregate)
