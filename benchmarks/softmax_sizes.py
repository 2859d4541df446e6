"""Training tokens/s against the vocabulary's size, the full softmax and the adaptive one, ours and
PyTorch's: throughput.py once per size, each run measuring the four side by side.

    .venv/bin/python benchmarks/softmax_sizes.py --torch-python PYTHON [--threads 2]
        [--batches 3] [--repeats 2] [--write-readme] [--figure benchmarks/softmax_sizes.png]

The model is zaremba-small's 2x200 untied LSTM at bptt 35, batch 20, on generated Zipfian arrays
of each size (throughput.py --vocab); the adaptive softmax's cutoffs per size are SIZES', the
largest WikiText-103's preset's. Prints each run's JSON lines, then a markdown table: tokens/s of
the four and the ratios (adaptive over full, ours over PyTorch's), each within one run.
``--write-readme`` puts the table into benchmarks/README.md between its softmax-sizes marks;
``--figure`` draws the four lines' tokens/s against the vocabulary's size, log-log.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BEGIN, END = "<!-- softmax-sizes:begin -->", "<!-- softmax-sizes:end -->"
# vocabulary size -> cutoffs: PTB's, WikiText-2's, a 100k one, WikiText-103's (its preset's)
SIZES = {10_000: [2000, 6000], 33_278: [4000, 12000], 100_000: [10000, 30000],
         267_735: [20000, 60000]}
COLUMNS = ("words", "cutoffs", "full tok/s", "adaptive tok/s", "PyTorch full tok/s",
           "PyTorch adaptive tok/s", "adaptive x full", "x PyTorch (adaptive)",
           "x PyTorch (full)", "peak RSS MB")


def measure(vocab, cutoffs, args):
    """throughput.py's lines for one size: {what: line}."""
    cmd = [sys.executable, str(HERE / "throughput.py"), "--mode", "lstm", "--experiment",
           "zaremba-small", "--set", "bptt=35", "--set", "softmax=adaptive", "--set",
           f"cutoffs={cutoffs}", "--versus", "softmax=full", "--vocab", str(vocab),
           "--batches", str(args.batches), "--repeats", str(args.repeats), "--threads",
           str(args.threads), "--torch-python", args.torch_python]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"softmax_sizes.py: {' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for line in lines:
        print(json.dumps({"vocab": vocab, **line}), flush=True)
    return {line["what"]: line for line in lines}


def row(vocab, cutoffs, by_what):
    ours, full = by_what["train"], by_what["versus"]
    torch, torch_full = by_what.get("pytorch"), by_what.get("pytorch_versus")
    dash = "-"
    return [f"{vocab:,}", str(cutoffs), f"{full['tokens_per_s']:,.0f}",
            f"{ours['tokens_per_s']:,.0f}",
            f"{torch_full['tokens_per_s']:,.0f}" if torch_full else dash,
            f"{torch['tokens_per_s']:,.0f}" if torch else dash, f"{ours['x_versus']:.2f}",
            f"{ours['x_pytorch']:.2f}" if torch else dash,
            f"{full['x_pytorch']:.2f}" if torch_full else dash,
            f"{max(line['peak_rss_mb'] for line in by_what.values()):,.0f}"]


LINES = {"train": ("rnnlm, adaptive", "C0", "-"), "versus": ("rnnlm, full", "C0", "--"),
         "pytorch": ("PyTorch, adaptive", "C1", "-"),
         "pytorch_versus": ("PyTorch, full", "C1", "--")}


def figure(measured, path, threads):
    """Tokens/s against words, one line per loop: {vocab: {what: line}} of the runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for what, (label, colour, style) in LINES.items():
        points = [(v, by_what[what]["tokens_per_s"]) for v, by_what in measured.items()
                  if what in by_what]
        if points:
            ax.plot(*zip(*points, strict=True), style, color=colour, marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="vocabulary (words)", ylabel="training tokens/s",
           title=f"2x200 LSTM, batch 20, bptt 35, {threads} thread(s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--torch-python", required=True, help="a Python with torch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=int, default=3, help="windows per measurement")
    p.add_argument("--repeats", type=int, default=2, help="rounds; the fastest counts")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--write-readme", action="store_true")
    p.add_argument("--figure", type=Path, help="a PNG of tokens/s against the vocabulary size")
    args = p.parse_args(argv)
    measured = {v: measure(v, SIZES[v], args) for v in args.sizes}
    rows = [row(v, SIZES[v], by_what) for v, by_what in measured.items()]
    if args.figure:
        figure(measured, args.figure, args.threads)
    table = "\n".join(["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
                       *["| " + " | ".join(r) + " |" for r in rows]])
    print(table)
    if args.write_readme:
        text = README.read_text()
        head, rest = text.split(BEGIN, 1)
        README.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
