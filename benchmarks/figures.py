"""benchmarks/README.md's table of throughput.py's figures: one row per experiment and mode.

The rows live as JSON in the comment that opens the table, so a run replaces its own row and
keeps the others; a row of another column layout (an older script's) is dropped.
"""

import json
import os
import platform
import time
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- figures:begin", "<!-- figures:end -->"
COLUMNS = ("experiment", "mode", "threads", "train tok/s", "PyTorch tok/s", "x PyTorch",
           "reference tok/s", "x reference", "GEMM x reference", "eval tok/s",
           "PyTorch eval tok/s", "eval x PyTorch", "GEMM GFLOP/s", "train GFLOP/s",
           "GEMM share", "peak RSS MB", "data s", "load avg")


def table_row(lines, load):
    """The README row of one run's JSON lines (a dash where the PyTorch line is missing)."""
    by_what = {line["what"]: line for line in lines}
    train, ev, ref, gemm = (by_what[w] for w in ("train", "eval", "reference", "gemm"))
    torch = by_what.get("pytorch")
    data = "-" if train["data_seconds"] is None else f"{train['data_seconds']:.1f}"
    label = [train["experiment"], *train["set"]] + (["tutorial-block"] if ref["block"] == "fused"
                                                      else [])
    return [" ".join(label), train["mode"], str(train["threads"]),
            f"{train['tokens_per_s']:,.0f}",
            f"{torch['tokens_per_s']:,.0f}" if torch else "-",
            f"{train['x_pytorch']:.2f}" if torch else "-",
            f"{ref['tokens_per_s']:,.0f}", f"{train['x_reference']:.2f}",
            f"{gemm['x_reference']:.2f}", f"{ev['tokens_per_s']:,.0f}",
            f"{torch['eval_tokens_per_s']:,.0f}" if torch else "-",
            f"{ev['x_pytorch']:.2f}" if torch else "-",
            f"{gemm['gflops']:.1f}", f"{train['gflops']:.1f}", f"{100 * train['gemm_share']:.0f}%",
            f"{train['peak_rss_mb']:,.0f}", data, load]


def write_readme(lines, load, path=README):
    """Replace this (experiment, mode, threads)'s row of the marked table."""
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    rows = json.loads(block.split("\n", 1)[0].strip().removesuffix("-->") or "[]")
    row = table_row(lines, load)
    rows = [r for r in rows if r[:3] != row[:3] and len(r) == len(COLUMNS)] + [row]
    rows.sort(key=lambda r: (r[0], r[1], int(r[2])))
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    stamp = (f"Last row written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs.")
    path.write_text(f"{head}{BEGIN} {json.dumps(rows)} -->\n" + "\n".join(table)
                    + f"\n\n{stamp}\n{END}{tail}")
