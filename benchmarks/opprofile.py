"""throughput.py's ``--profile``: where a trainer window goes, operator by operator.

MXNet's aggregate table sums and averages each operator's calls, so on a busy machine a few
preempted calls inflate it; the table written first here gives each operator's median time per
window instead (the windows told apart by an operator called once in each, such as Embedding).
MXNet 1.9.1 traces most calls twice (the same operator and thread, overlapping in time; calls of
an operator never overlap): the second is dropped.
"""

import json
import statistics
from collections import Counter, defaultdict


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
    """Per operator: median ms per window, calls per window, largest first. A window runs from
    one call of the first operator called once per window to the next."""
    traced = calls(trace_events)
    counts = Counter(name for name, _, _ in traced)
    marker = next((name for name, _, _ in traced if counts[name] == windows), None)
    per_window, window = defaultdict(lambda: [0.0] * windows), -1
    for name, _, duration in traced:
        window += name == marker
        per_window[name][min(max(window, 0), windows - 1)] += duration / 1000
    rows = sorted(((statistics.median(t), counts[n] / windows, n) for n, t in per_window.items()),
                  reverse=True)
    lines = [f"{'operator':40s} {'ms/window':>10s} {'calls':>6s}"]
    lines += [f"{name[:40]:40s} {ms:10.3f} {n:6.1f}" for ms, n, name in rows]
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
    path.write_text(f"{batches} windows of the trainer; per operator, its median over them\n"
                    + median_table(events, batches) + "\nMXNet's aggregate table\n" + aggregate)
