"""The command flags of a run's settings: what `rnnlm train`, `rnnlm cache` and `rnnlm
dynamic-eval` are called with,
and so what a run's training depends on (runs.Plan.training_key)."""

import shlex

# Experiment keys that are `rnnlm train` flags, in this order (batch sizes are the arrays' widths)
TRAIN_FLAGS = ("emsize", "nhid", "nlayers", "dropout", "init_range", "rnn_init", "lr", "clip",
               "clip_per", "epochs", "bptt", "seed", "lr_schedule", "decay_after", "decay_factor",
               "max_batches", "dropout_e", "dropout_i", "dropout_h", "dropout_o", "weight_dropout",
               "alpha", "beta", "wd", "optimizer", "nonmono", "finetune_epochs")
SWITCHES = ("restore_best", "tied", "variable_bptt")  # booleans: --key or --no-key
MOGRIFIER_FLAGS = ("mogrifier_rounds", "mogrifier_rank")  # mode mogrifier's only
# The cache's default grids (the schema's defaults of experiments.*.cache): around awd-lstm-lm's
# README values (PTB theta 1.0, lambda 0.1; WikiText-2 theta 0.662, lambda 0.1279), both
# chosen on validation as Grave et al. 2016 choose theirs; lambda 0 (no cache) is always tried.
CACHE_THETAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0)
CACHE_LAMBDAS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4)
# Dynamic evaluation's defaults (the schema's of experiments.*.dynamic_eval): Krause et al.
# 2018's grid for AWD-LSTM on PTB (dynamiceval.py lines 275-276, segment 5, lr 3e-5 .. 1e-4,
# decay 0.001 .. 0.005) thinned to 3 x 3 around their defaults (lr 5e-5, decay 0.002) for the
# rms rule; lr 0 (the static model) is always tried. Gradient statistics: 1000 windows of batch
# 100 x 5 tokens, about half of PTB's training split (dynamiceval.py reads all of it).
DYNAMIC_LRS = (3e-5, 5e-5, 1e-4)
DYNAMIC_DECAYS = (0.001, 0.002, 0.005)
MS_WINDOWS = 1000
MS_BATCH = 100  # columns of the training array the gradient statistics read (dynamiceval.py)


def grid_points(lrs, decays):
    """(lr, decay) pairs: lr 0 once (its weights never move, so its decay is moot), first, so a
    tie keeps the static model; then every positive lr with every decay."""
    return [(0.0, 0.0)] + [(lr, decay) for lr in sorted(set(lrs)) if lr > 0
                           for decay in sorted(set(decays))]


def dynamic_workers(threads, lrs, decays):
    """Passes a dynamic evaluation job on the CPU runs at a time, each in a worker process of
    its own when more than 1: one per thread, at most one per grid point."""
    return max(1, min(threads, len(grid_points(lrs, decays))))


def train_flags(exp, seed, mode):
    """`rnnlm train` flags of experiment settings ``exp`` for one seed of ``mode``: the
    mogrifier's keys for it alone, so the other modes' runs (and their training keys) are as
    they were before it."""
    values = {**exp, "seed": seed}
    flags = [f"--{key.replace('_', '-')} {shlex.quote(str(values[key]))}" for key in TRAIN_FLAGS
             if values[key] is not None]
    switches = [f"--{'' if exp[key] else 'no-'}{key.replace('_', '-')}" for key in SWITCHES]
    if exp["softmax"] != "full":  # the full softmax's flags as before there was another
        switches += [f"--softmax {exp['softmax']}", "--cutoffs", *map(str, exp["cutoffs"]),
                     f"--div-value {exp['div_value']}"]
    if mode == "mogrifier":
        flags += [f"--{key.replace('_', '-')} {exp[key]}" for key in MOGRIFIER_FLAGS]
    return " ".join([*flags, *switches])


def cache_flags(exp):
    """`rnnlm cache` flags of an experiment's `cache` settings."""
    grid = exp["cache"]
    return " ".join([f"--window {grid['window']}", "--thetas", *map(str, grid["thetas"]),
                     "--lambdas", *map(str, grid["lambdas"])])


def dynamic_eval_flags(exp):
    """`rnnlm dynamic-eval` flags of an experiment's `dynamic_eval` settings, with its `cache`
    (if set) on top of the dynamic pass."""
    grid = exp["dynamic_eval"]
    flags = [f"--segment {grid['segment']}", f"--rule {grid['rule']}",
             f"--ms-windows {grid['ms_windows']}", "--lrs", *map(str, grid["lr"]),
             "--decays", *map(str, grid["decay"])]
    if exp["cache"]:
        flags.append(f"--cache-window {cache_flags(exp).removeprefix('--window ')}")
    return " ".join(flags)
