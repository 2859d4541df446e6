"""Data-stage benchmark: `rnnlm vocab` and `rnnlm batchify` on a generated corpus of WikiText-103's
size, each stage its own process, timed, with that process's peak RSS; optionally what training
a small model on such a corpus costs per epoch.

    .venv/bin/python benchmarks/data_stages.py [--tokens N] [--vocab V] [--folder DIR]
                                               [--train-windows W]

The corpus: V - 1 distinct words (one of them <unk>; with <eos>, a vocabulary of V) in
paragraphs of 10 to 169 words with a blank line after each, as in WikiText's files. Training
first holds every word once, then N words drawn from a Zipf law (frequency ~ 1/rank) over them;
valid and test hold WikiText-103's 217,646 and 245,569 words, from the same law with 1 in 200
replaced by a word training never saw. One JSON line per measurement: `what`, `seconds`,
`peak_rss_mb` (of the stage's process; at least this script's own ~40 MB, which a child starts
from), and the stage's own figures (tokens, vocabulary size, array shape, tokens/s).
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RNNLM = Path(sys.executable).with_name("rnnlm")
WIKITEXT_103 = {"train": 103_227_021, "valid": 217_646, "test": 245_569, "vocab": 267_735}
UNK_RANK = 30  # <unk>'s place by frequency among the words
NEW_WORD = 200  # 1 in this many valid/test words is one training never saw


CHUNK = 10_000_000  # words generated at a time


def paragraphs(rng, ids, sentinel):
    """``ids`` with ``sentinel`` (a paragraph break) after every 10 to 169 of them and at the
    end."""
    ends = np.cumsum(rng.integers(10, 170, size=len(ids) // 10 + 1))
    return np.append(np.insert(ids, ends[ends < len(ids)], sentinel), sentinel)


def write_words(out, ids, table):
    """The words of ``ids`` through ``table`` (bytes per id)."""
    out.write(b"".join(map(table.__getitem__, ids.tolist())))


def generate(folder, tokens, vocab, seed=0):
    """train.txt, valid.txt and test.txt of the corpus described above, in ``folder``."""
    rng = np.random.default_rng(seed)
    words = vocab - 1  # <eos> is the loader's
    names = [f"w{i}" for i in range(words)]
    names[UNK_RANK] = "<unk>"
    new = [f"new{i}" for i in range(1000)]  # valid/test words training never saw
    table = [f" {w}".encode() for w in [*names, *new]] + [b" \n \n"]
    sentinel = len(table) - 1
    cdf = np.cumsum(1.0 / np.arange(1, words + 1))
    cdf /= cdf[-1]
    sizes = {"train": tokens, "valid": WIKITEXT_103["valid"], "test": WIKITEXT_103["test"]}
    for split, size in sizes.items():
        with open(folder / f"{split}.txt", "wb") as out:
            if split == "train":  # every word once
                write_words(out, paragraphs(rng, rng.permutation(words), sentinel), table)
            for start in range(0, size, CHUNK):
                ids = np.searchsorted(cdf, rng.random(min(CHUNK, size - start)))
                if split != "train":
                    novel = rng.random(len(ids)) < 1 / NEW_WORD
                    ids[novel] = words + rng.integers(0, len(new), size=novel.sum())
                write_words(out, paragraphs(rng, ids, sentinel), table)
    (folder / "corpus.json").write_text(json.dumps({"tokens": tokens, "vocab": vocab,
                                                    "seed": seed}))


def run(*args):
    """`rnnlm ARGS` as a rule runs it: seconds, peak RSS (MB) and CPU seconds of its process."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen([str(RNNLM), *map(str, args)], stdout=log, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            sys.exit(f"data_stages.py: rnnlm {args[0]} failed:\n{log.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # Linux: kB


def report(what, seconds, peak_rss_mb=None, cpu_seconds=None, **figures):
    rss = None if peak_rss_mb is None else round(peak_rss_mb)
    cpu = None if cpu_seconds is None else round(cpu_seconds, 1)
    print(json.dumps({"what": what, "seconds": round(seconds, 1), "cpu_seconds": cpu,
                      "peak_rss_mb": rss, **figures}), flush=True)


def data_stages(folder, batch_size, eval_batch_size):
    """Time vocab, then batchify of each split; the stats the vocab stage wrote."""
    texts = [folder / f"{split}.txt" for split in ("train", "valid", "test")]
    seconds, rss, cpu = run("vocab", "--train", texts[0], "--valid", texts[1], "--test",
                            texts[2], "--vocab", folder / "vocab.tsv", "--stats",
                            folder / "stats.json")
    stats = json.loads((folder / "stats.json").read_text())
    report("vocab", seconds, rss, cpu, vocab_size=stats["vocab_size"],
           tokens={s: stats[s]["tokens"] for s in ("train", "valid", "test")},
           oov={s: stats[s]["oov"] for s in ("train", "valid", "test")},
           tokens_per_s=round(sum(stats[s]["tokens"] for s in ("train", "valid", "test"))
                              / seconds))
    total, peak, total_cpu = seconds, rss, cpu
    for text, size in zip(texts, (batch_size, eval_batch_size, eval_batch_size), strict=True):
        out = folder / f"{text.stem}.b{size}.npy"
        seconds, rss, cpu = run("batchify", "--corpus", text, "--vocab", folder / "vocab.tsv",
                                "--batch-size", size, "--out", out)
        shape = np.load(out, mmap_mode="r").shape
        report(f"batchify {text.stem}", seconds, rss, cpu, shape=list(shape),
               tokens_per_s=round(shape[0] * shape[1] / seconds))
        total, peak, total_cpu = total + seconds, max(peak, rss), total_cpu + cpu
    report("data stages", total, peak, total_cpu, load_avg=[round(x, 1) for x in os.getloadavg()])
    return stats


def training_cost(folder, windows, batch_size, eval_batch_size, stats):
    """`rnnlm train` of a 2x200 LSTM (untied, as zaremba-small) for ``windows`` windows of 35
    steps on the generated arrays; its tokens/s, and hours for one epoch of ``tokens``."""
    valid = np.load(folder / f"valid.b{eval_batch_size}.npy")[:71]  # two windows: cheap
    np.save(folder / "valid.small.npy", valid)
    seconds, rss, cpu = run("train", "--mode", "lstm", "--vocab", folder / "vocab.tsv",
                            "--train", folder / f"train.b{batch_size}.npy",
                            "--valid", folder / "valid.small.npy", "--out-dir", folder / "run",
                            "--emsize", 200, "--nhid", 200, "--nlayers", 2, "--dropout", 0,
                            "--no-tied", "--bptt", 35, "--epochs", 1, "--max-batches", windows,
                            "--threads", 2, "--log-interval", windows)
    summary = json.loads((folder / "run" / "summary.json").read_text())
    rate = summary["tokens_per_s"]
    report("train", seconds, rss, cpu, model="lstm 2x200 untied, bptt 35", batch_size=batch_size,
           windows=windows, vocab_size=stats["vocab_size"], tokens_per_s=round(rate, 1),
           epoch_hours=round(stats["train"]["tokens"] / rate / 3600, 1),
           load_avg=[round(x, 1) for x in os.getloadavg()])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=WIKITEXT_103["train"],
                   help="training words drawn (default WikiText-103's 103,227,021)")
    p.add_argument("--vocab", type=int, default=WIKITEXT_103["vocab"],
                   help="vocabulary size with <eos> (default WikiText-103's 267,735)")
    p.add_argument("--folder", type=Path,
                   help="keep the corpus and arrays here, and reuse a corpus generated there "
                        "before with the same --tokens and --vocab (default: a temporary folder)")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--eval-batch-size", type=int, default=10)
    p.add_argument("--train-windows", type=int, default=0,
                   help="also time this many training windows of a 2x200 LSTM (default 0: no)")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        folder = args.folder or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / "corpus.json"
        wanted = {"tokens": args.tokens, "vocab": args.vocab, "seed": 0}
        if not marker.is_file() or json.loads(marker.read_text()) != wanted:
            # In a process of its own: a child's peak RSS starts at its parent's size.
            start = time.perf_counter()
            child = multiprocessing.get_context("spawn").Process(
                target=generate, args=(folder, args.tokens, args.vocab))
            child.start()
            child.join()
            if child.exitcode:
                sys.exit("data_stages.py: generating the corpus failed")
            report("generate", time.perf_counter() - start,
                   megabytes=round(sum(f.stat().st_size for f in folder.glob("*.txt")) / 1e6))
        stats = data_stages(folder, args.batch_size, args.eval_batch_size)
        if args.train_windows:
            training_cost(folder, args.train_windows, args.batch_size, args.eval_batch_size,
                          stats)

if __name__ == "__main__":
    main()
