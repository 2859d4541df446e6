"""Tokens per second of the project's trainer and evaluation, against the tutorial's loop, PyTorch's
example and GEMM.

    python benchmarks/throughput.py --mode MODE --experiment NAME --batches N [--threads T]
        [--torch-python PYTHON]

NAME is an experiment of config.yaml or a preset of workflow/presets/, resolved as the pipeline
does (rnnlm.plan: a config experiment's keys over the preset's), on PTB. Prints one JSON line
per measurement, ``what`` being:

- ``train``: rnnlm.loop's Run.step for N windows, in 5 chunks each synced at its end (as at
  a log point), alternating with the reference's and PyTorch's chunks;
- ``eval``: rnnlm.step.split_loss, the evaluate stage's loop, over N windows of the valid split;
- ``dynamic``: rnnlm.adapt.dynamic's segment pass (dynamic evaluation, rms rule at the
  default lr and decay, segments of 5 tokens, a step after each) over the eval line's tokens of
  the valid split's first column at batch 1, on a model of the same settings; adds
  ``static_tokens_per_s`` (the same batch-1 pass without the steps),
  ``mxnet_update_tokens_per_s`` (the same pass with its update in MXNet's operators, as on a
  GPU, not numpy's on the weights' memory) and ``x_eval`` (its tokens/s over the eval line's,
  which reads at the eval batch size);
- ``reference``: benchmarks/reference.py, the tutorial's loop, on the same model, weights and data
  (``--tutorial-block``: on the tutorial's own fused multi-layer block);
- ``versus`` (with ``--versus KEY=VALUE ...``): the same trainer, model and initial weights with
  those settings changed, e.g. AWD-LSTM's regularisers on, its chunks alternating with the
  train line's; ``x_train`` is its tokens/s over the train line's (variable windows counted by
  the tokens they hold); ``--versus-mode MODE`` trains that mode on that side, e.g. ``--mode
  lstm --versus-mode mogrifier``: the step-by-step Mogrifier LSTM beside the fused LSTM of the
  same sizes (its own initial weights: it has more);
- ``gemm``: the matrix products of N training windows alone, each shape timed through MXNet
  (the faster of nd.dot and FullyConnected): the speed limit the trainer is measured against.
  Its ``x_reference`` is the ceiling: the trainer's ratio if all else took no time;
- ``pytorch``: benchmarks/pytorch_loop.py, PyTorch's word_language_model loop on the same sizes,
  weights and arrays, in a worker process of PYTHON (default: this one; torch is no dependency of
  the pipeline, see benchmarks/pytorch_line.py), adding ``eval_tokens_per_s``, its
  ``torch.no_grad()`` evaluation over the eval line's windows. Without torch a note on stderr
  says how to get it and the line is left out; a PyTorch model that does not show the trainer's
  parameter count and first-window loss is refused (exit status 1).

Each line has ``tokens_per_s``, ``gflops`` (by ``window_flops``), ``seconds`` and ``peak_rss_mb``
(the process's peak so far); train adds ``x_reference``, ``gemm_share`` and ``x_pytorch``, eval
``x_pytorch``. Every measurement is the fastest of ``--repeats`` rounds run in turn, so a busy
machine slows all of them alike. The arrays are PTB's, built by the data stages from the local
mirror (timed: ``data_seconds``), else generated ones of PTB's shape. ``--write-readme`` puts the
figures into benchmarks/README.md.
"""

import argparse
import dataclasses
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import write_readme
from opprofile import profile
from workload import (
    PTB_VOCAB,
    REPO,
    experiment_settings,
    gemms,
    generated_arrays,
    local_mirror,
    ptb_arrays,
    window_flops,
    zipf_arrays,
)

from rnnlm.plan.runs import MODES  # no mxnet: the script sets its threads before that loads

WARMUP = 3  # windows before timing: shapes bound, memory planned, caches warm


# --- measurements ----------------------------------------------------------------------------


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


class Trainer:
    """The project's trainer (rnnlm.loop.Run) stepping through the training array."""

    def __init__(self, model_config, train_config, ctx, train, valid, folder):
        from rnnlm.awd.asgd import Average
        from rnnlm.checkpoint import Checkpoint
        from rnnlm.loop import Run
        from rnnlm.model import RNNModel
        from rnnlm.mx import mxnet as mx

        mx.random.seed(train_config.seed)
        # as rnnlm.train's on the CPU
        self.model = RNNModel(model_config, sparse_grad=not train_config.wd)
        self.model.initialize_weights([ctx])
        self.model.hybridize(static_alloc=True, static_shape=True)
        self.run = Run(train_config, self.model, [ctx], [train], [valid],
                       Checkpoint(folder / "checkpoint", {}))
        if train_config.optimizer == "nt-asgd":  # timed as it steps once it averages
            self.run.average = Average(self.run.params, ctx)
        self.next = self.tokens = 0

    def steps(self, n):
        """n windows; the losses come to the host once, at the end, as at a log point."""
        from rnnlm.mx import nd

        pending = []
        for _ in range(n):
            start, length = self.run.windows[self.next % len(self.run.windows)]
            pending.append(self.run.step(start, length))
            self.next += 1
            self.tokens += length * self.run.batch_size
        return nd.concat(*[p[0] for p in pending], dim=0).asnumpy()


class Reference:
    """benchmarks/reference.py's tutorial loop on a copy of the trainer's initial weights."""

    def __init__(self, model_config, train_config, ctx, train, source_model, max_norm, fused):
        from reference import ReferenceLoop, TutorialModel, copy_weights

        self.model = TutorialModel(model_config, fused=fused)
        self.model.initialize(ctx=ctx)
        copy_weights(source_model, self.model)
        self.loop = ReferenceLoop(self.model, train, train_config.lr, max_norm, ctx)
        self.starts = range(0, train.shape[0] - 1, train_config.bptt)
        self.bptt, self.next = train_config.bptt, 0

    def steps(self, n):
        losses = []
        for _ in range(n):
            losses.append(self.loop.step(self.starts[self.next % len(self.starts)], self.bptt))
            self.next += 1
        return np.array(losses)


def time_gemm(m, k, n, repeats):
    """Seconds per product of an (m x k) by (k x n) matrix: the faster of dot and FullyConnected."""
    from rnnlm.mx import nd

    a, b = nd.random.uniform(-1, 1, (m, k)), nd.random.uniform(-1, 1, (k, n))
    bt = b.T.copy()  # FullyConnected multiplies by the transpose of its (n, k) weight
    calls = {"dot": lambda: nd.dot(a, b),
             "fc": lambda: nd.FullyConnected(a, bt, no_bias=True, num_hidden=n, flatten=False)}
    best = math.inf
    for call in calls.values():
        call().wait_to_read()
        start = time.perf_counter()
        for _ in range(repeats):
            out = call()
        out.wait_to_read()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def gemm_seconds(shapes):
    """Seconds of one window's matrix products, each shape timed for about 20 ms."""
    total = 0.0
    for m, k, n, calls in shapes:
        repeats = max(3, min(2000, int(2e8 / (2 * m * k * n))))
        total += calls * time_gemm(m, k, n, repeats)
    return total


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def measure(args):
    """All measurements, interleaved over ``args.repeats`` rounds; the best of each. Also the
    exit status: 1 if the PyTorch line was refused."""
    from rnnlm.mx import mxnet as mx
    from rnnlm.mx import nd
    from rnnlm.step import EVAL_WINDOW, eval_graph, split_loss
    from rnnlm.train import TrainConfig

    settings, ptb = args.settings, args.config_used["corpora"]["ptb"]
    batch, eval_batch, bptt = (settings[k] for k in ("batch_size", "eval_batch_size", "bptt"))
    with tempfile.TemporaryDirectory(prefix="rnnlm-bench-") as tmp:
        folder = Path(tmp)
        mirror = None if args.synthetic or args.vocab else local_mirror(ptb)
        if mirror:
            arrays, vocab_size, data_seconds = ptb_arrays(mirror, ptb, batch, eval_batch, folder)
        elif args.vocab:
            arrays, vocab_size, data_seconds = zipf_arrays(batch, eval_batch, args.vocab), \
                args.vocab, None
        else:
            arrays, vocab_size, data_seconds = generated_arrays(batch, eval_batch), PTB_VOCAB, None
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        model_config = model_settings(args.mode, vocab_size, settings)
        train_config = TrainConfig(**{k: v for k, v in settings.items() if k in train_fields})
        ctx = mx.cpu()
        train = nd.array(arrays["train"], dtype="float32", ctx=ctx)
        valid = nd.array(arrays["valid"], dtype="float32", ctx=ctx)
        ours = Trainer(model_config, train_config, ctx, train, valid, folder)
        full = model_config.softmax == "full"  # the reference and GEMM lines are the full one's
        sides = {"train": ours}
        if full:
            sides["reference"] = Reference(model_config, train_config, ctx, train, ours.model,
                                           train_config.max_norm(batch), args.tutorial_block)
        if args.versus or args.versus_mode:
            other = args.versus_settings
            sides["versus"] = Trainer(
                model_settings(args.versus_mode or args.mode, vocab_size, other),
                TrainConfig(**{k: v for k, v in other.items() if k in train_fields}), ctx, train,
                valid, folder / "versus")
        torch, status = start_pytorch(args, ours, arrays, folder)
        if torch:
            sides["pytorch"] = torch
        if torch and args.versus and not args.versus_mode:  # PyTorch's loop with them too
            torch_versus, status = start_pytorch(args, sides["versus"], arrays, folder / "versus")
            if torch_versus:
                sides["pytorch_versus"] = torch_versus
        rows = min(args.batches * bptt + 1, valid.shape[0])
        window = max(bptt, EVAL_WINDOW)  # split_loss's; PyTorch's loop gets the same
        evals = {"eval": (split_loss, eval_graph(ours.model, [valid[:rows]], bptt),
                          [valid[:rows]], bptt)}
        if torch:
            evals["pytorch_eval"] = (torch.evaluate, rows, window)
        evals.update(dynamic_passes(model_config, ctx, train, valid, rows - 1))
        shapes = gemms(args.mode, model_config.emsize, model_config.nhid, model_config.nlayers,
                       vocab_size, batch, bptt) if full else []
        best = time_rounds(args, sides, evals, shapes)
        if args.profile:
            profile(ours, args.batches, args.profile)
        for side in sides.values():
            if hasattr(side, "close"):
                side.close()
    sizes = (args.mode, model_config.emsize, model_config.nhid, model_config.nlayers, vocab_size)
    lines = json_lines(args, best, sizes, batch, eval_batch, bptt, rows, shapes)
    lines[0].update(data_seconds=data_seconds, threads=args.threads, batches=args.batches,
                    data="ptb" if mirror else "generated", set=args.set)
    by_what = {line["what"]: line for line in lines}
    if "reference" in by_what:
        by_what["reference"].update(block="fused" if args.tutorial_block else "stacked")
    for what in ("pytorch", "pytorch_versus"):
        if what in sides:
            by_what[what].update(torch=sides[what].version, peak_rss_mb=sides[what].peak_rss_mb)
    return lines, status


def dynamic_passes(model_config, ctx, train, valid, tokens):
    """The ``dynamic`` line's passes, dynamic and static, over ``tokens`` of the valid split's
    first column at batch 1, on a model of its own (a pass restores the weights it began with,
    which would undo the trainer's steps)."""
    from rnnlm.adapt.dynamic import Adapter, decay_rates, gradient_statistics
    from rnnlm.model import RNNModel
    from rnnlm.mx import nd
    from rnnlm.plan.flags import DYNAMIC_DECAYS, DYNAMIC_LRS

    model = RNNModel(model_config)
    model.initialize_weights(ctx)
    model.hybridize(static_alloc=True, static_shape=True)
    ms, _ = gradient_statistics(model, train, 5, 10)
    adapter = Adapter(model, ctx, ms, decay_rates(ms))
    stream = nd.slice_axis(valid, axis=1, begin=0, end=1)[:tokens + 1]
    update = adapter.update("rms", DYNAMIC_LRS[1], DYNAMIC_DECAYS[1])
    by_mxnet = adapter.update("rms", DYNAMIC_LRS[1], DYNAMIC_DECAYS[1], on_host=False)
    return {"dynamic": (adapter.segment_pass, stream, 5, update),
            "dynamic_mxnet_update": (adapter.segment_pass, stream, 5, by_mxnet),
            "static_b1": (adapter.segment_pass, stream, 5, None)}


def model_settings(mode, vocab_size, settings):
    """The ModelConfig of experiment ``settings``; the full softmax's without the adaptive
    one's keys (rnnlm.plan passes those only with softmax adaptive)."""
    from rnnlm.model import SOFTMAX_FIELDS, ModelConfig

    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab_size"}
    if settings["softmax"] == "full":
        fields -= set(SOFTMAX_FIELDS)
    return ModelConfig(mode, vocab_size, **{k: v for k, v in settings.items() if k in fields})


def start_pytorch(args, ours, arrays, folder):
    """The PyTorch loop on the trainer's (``ours``) initial weights and the same arrays, checked
    to compute the trainer's function; or None and why on stderr, with the exit status."""
    from pytorch_line import PyTorchLoop, Skipped

    folder.mkdir(parents=True, exist_ok=True)
    train_config = ours.run.cfg
    weights = ours.model.arrays().values()
    np.savez(folder / "weights.npz", **{f"p{i}": w.asnumpy() for i, w in enumerate(weights)})
    paths = {split: str(folder / f"pytorch.{split}.npy") for split in ("train", "valid")}
    for split, path in paths.items():
        np.save(path, arrays[split])
    setup = {"model": dataclasses.asdict(ours.model.config), "threads": args.threads,
             "train": {"lr": train_config.lr, "bptt": train_config.bptt, "seed": train_config.seed,
                       "max_norm": train_config.max_norm(arrays["train"].shape[1])},
             "arrays": paths, "weights": str(folder / "weights.npz")}
    try:
        torch = PyTorchLoop(args.torch_python, setup, args.torch_env)
        torch.check(ours.model.param_count(), first_window_loss(ours.model, ours.run))
    except Skipped as why:
        print(f"throughput.py: {why}", file=sys.stderr)
        return None, why.exit_code
    return torch, 0


def first_window_loss(model, run):
    """The summed loss of ``run``'s first training window from ``model``'s weights, no dropout
    (predict mode: outside autograd.record)."""
    from rnnlm.step import loss_graph, window_loss

    train = run.train[0]
    state = [model.begin_state(train.shape[1], train.context)]
    return float(window_loss(loss_graph(model), [train], state, *run.windows[0])[0][0].asscalar())


def time_rounds(args, sides, evals, shapes):
    """Seconds of each measurement, the fastest of ``args.repeats`` rounds. Within a round the
    training loops alternate in chunks, so all see the machine's load of the moment."""
    for side in sides.values():
        side.steps(WARMUP)
    for fn, *fn_args in evals.values():
        fn(*fn_args)
    best = dict.fromkeys([*sides, *evals, *(["gemm"] if shapes else [])], math.inf)
    chunks = np.diff(np.linspace(0, args.batches, min(args.batches, 5) + 1).round()).astype(int)
    for _ in range(args.repeats):
        seconds = dict.fromkeys(sides, 0.0)
        tokens = {what: getattr(side, "tokens", 0) for what, side in sides.items()}
        for n in chunks:
            for what, side in sides.items():
                seconds[what] += timed(side.steps, n)[0]
        if "versus" in sides:  # its seconds for the train line's tokens: windows may vary
            seconds["versus"] *= ((sides["train"].tokens - tokens["train"])
                                  / (sides["versus"].tokens - tokens["versus"]))
        for what, (fn, *fn_args) in evals.items():
            seconds[what] = timed(fn, *fn_args)[0]
        if shapes:
            seconds["gemm"] = args.batches * gemm_seconds(shapes)
        best = {what: min(best[what], seconds[what]) for what in best}
    return best


def json_lines(args, best, sizes, batch, eval_batch, bptt, rows, shapes):
    """train, eval, reference, gemm and (if measured) pytorch, with their ratios."""
    train_tokens, eval_tokens = args.batches * bptt * batch, (rows - 1) * eval_batch
    flops = {"train": args.batches * window_flops(*sizes, batch, bptt),
             "eval": (rows - 1) / bptt * window_flops(*sizes, eval_batch, bptt, train=False),
             "gemm": args.batches * sum(2 * m * k * n * c for m, k, n, c in shapes)}
    flops["reference"] = flops["pytorch"] = flops["versus"] = flops["train"]
    flops["pytorch_versus"] = flops["train"]
    lines = {}
    for what in ("train", "eval", "reference", "gemm", "pytorch", "versus", "pytorch_versus"):
        if what in best:
            tokens = eval_tokens if what == "eval" else train_tokens
            lines[what] = {"what": what, "mode": args.mode, "experiment": args.experiment,
                           "tokens_per_s": tokens / best[what],
                           "gflops": flops[what] / best[what] / 1e9 if full_softmax(
                               args, what) else None,  # window_flops counts the full one's
                           "seconds": best[what], "peak_rss_mb": peak_rss_mb()}
    if "reference" in best:
        lines["train"].update(x_reference=best["reference"] / best["train"],
                              gemm_share=lines["train"]["gflops"] / lines["gemm"]["gflops"])
        lines["gemm"].update(x_reference=best["reference"] / best["gemm"])
    if "versus" in best:
        lines["versus"].update(x_train=best["train"] / best["versus"], set=args.versus,
                               mode=args.versus_mode or args.mode)
        lines["train"].update(x_versus=best["versus"] / best["train"])
    if "pytorch_versus" in best:
        lines["versus"].update(x_pytorch=best["pytorch_versus"] / best["versus"])
        lines["pytorch_versus"].update(set=args.versus)
    b1_tokens = rows - 1  # dynamic_passes' stream
    lines["dynamic"] = {"what": "dynamic", "mode": args.mode, "experiment": args.experiment,
                        "tokens_per_s": b1_tokens / best["dynamic"], "gflops": None,
                        "seconds": best["dynamic"], "peak_rss_mb": peak_rss_mb(),
                        "static_tokens_per_s": b1_tokens / best["static_b1"],
                        "mxnet_update_tokens_per_s": b1_tokens / best["dynamic_mxnet_update"],
                        "x_eval": (b1_tokens / best["dynamic"]) / (eval_tokens / best["eval"])}
    if "pytorch" in best:
        lines["train"].update(x_pytorch=best["pytorch"] / best["train"])
        lines["eval"].update(x_pytorch=best["pytorch_eval"] / best["eval"])
        lines["pytorch"].update(eval_tokens_per_s=eval_tokens / best["pytorch_eval"],
                                eval_seconds=best["pytorch_eval"])
    return list(lines.values())


def full_softmax(args, what):
    """Whether line ``what`` measures a model with the full softmax."""
    settings = args.versus_settings if what in ("versus", "pytorch_versus") else args.settings
    return settings["softmax"] == "full"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--experiment", required=True, help="an experiment of config.yaml or a preset")
    p.add_argument("--batches", type=int, required=True, help="windows timed per measurement")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for MXNet (default: config.yaml's threads)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the fastest of each counts")
    p.add_argument("--config", type=Path, default=REPO / "config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one of the experiment's settings, e.g. --set bptt=35")
    p.add_argument("--versus", action="append", default=[], metavar="KEY=VALUE",
                   help="also time the trainer with this setting changed (repeat for several), "
                        "e.g. --versus weight_dropout=0.5: the versus line")
    p.add_argument("--versus-mode", choices=MODES,
                   help="the versus line's mode, e.g. mogrifier beside --mode lstm")
    p.add_argument("--tutorial-block", action="store_true",
                   help="time the reference on the tutorial's fused multi-layer block")
    p.add_argument("--synthetic", action="store_true", help="generated arrays even if PTB is here")
    p.add_argument("--vocab", type=int, metavar="V",
                   help="generated arrays of PTB's token counts over V words, Zipfian (frequency "
                        "~ 1/rank, ids by rank: data_stages.py's law), instead of PTB")
    p.add_argument("--profile", type=Path, metavar="FILE",
                   help="also write MXNet's per-operator times over N trainer windows to FILE "
                        "(bulk execution off, so that each operator is named)")
    p.add_argument("--torch-python", default=sys.executable, metavar="PYTHON",
                   help="a Python with torch, for the PyTorch line (default: this one)")
    p.add_argument("--write-readme", action="store_true",
                   help="put this run's row into benchmarks/README.md's table")
    args = p.parse_args(argv)
    if args.batches < 1 or args.repeats < 1:
        p.error("--batches and --repeats must be at least 1")
    args.settings, args.config_used = experiment_settings(args.experiment, args.config, args.set)
    if args.versus or args.versus_mode:
        args.versus_settings, _ = experiment_settings(args.experiment, args.config,
                                                      args.set + args.versus)
    if args.threads is None:
        args.threads = args.config_used["threads"]
    args.torch_env = dict(os.environ)  # PyTorch runs as its users run it, without our settings
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.profile:  # no effect on NaiveEngine's speed; the profile then names every operator
        os.environ["MXNET_EXEC_BULK_EXEC_TRAIN"] = "0"
    from rnnlm.cli.args import use_threads  # the pipeline's thread settings, before mxnet loads

    use_threads(args.threads)
    lines, status = measure(args)
    for line in lines:
        print(json.dumps(line), flush=True)
    if args.write_readme and status == 0:
        write_readme(lines, " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return status


if __name__ == "__main__":
    sys.exit(main())
