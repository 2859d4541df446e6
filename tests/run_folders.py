"""Finished run folders written by hand, as train and evaluate leave them (RESULTS layout)."""

import hashlib
import json

EPOCH_TOKENS = 1200  # training tokens per epoch
REPORTS = 3  # training reports per epoch


def make_run(results, experiment, mode, seed=1, test_ppl=120.5, valid_ppl=None, epochs=2,
             tokens_per_s=4567.8, param_count=12345, conditions=None):
    """``results/<experiment>/<mode>/seed<seed>``: validation perplexity falls to ``valid_ppl``
    (default: ``test_ppl`` + 5) at the last epoch, training perplexity falls with every report.
    ``conditions``: what the machine did meanwhile (rnnlm.contention), by default a quiet one."""
    run = results / experiment / mode / f"seed{seed}"
    run.mkdir(parents=True)
    valid_ppl = test_ppl + 5 if valid_ppl is None else valid_ppl
    valid = [valid_ppl * (1 + (epochs - 1 - e) / 2) for e in range(epochs)]
    metrics = ["epoch,lr,train_loss,train_ppl,valid_loss,valid_ppl,seconds,tokens_per_s,"
               "tokens_seen"]
    progress = ["epoch,batch,tokens_seen,lr,train_loss,train_ppl"]
    for e in range(epochs):
        for r in range(1, REPORTS + 1):
            seen = e * EPOCH_TOKENS + r * EPOCH_TOKENS // REPORTS
            progress.append(f"{e + 1},{r * 10},{seen},1.0,5.0,{train_ppl(seen, seed)}")
        metrics.append(f"{e + 1},1.0,5.0,150.0,5.0,{valid[e]},4.0,{tokens_per_s},"
                       f"{(e + 1) * EPOCH_TOKENS}")
    (run / "metrics.csv").write_text("\n".join(metrics) + "\n")
    (run / "progress.csv").write_text("\n".join(progress) + "\n")
    (run / "test.json").write_text(json.dumps({
        "split": "test", "tokens": 1000, "loss": 4.79, "perplexity": test_ppl,
        "test_ppl": test_ppl}))
    settings = {"mode": mode, "seed": seed, "lr": 1.0}
    (run / "summary.json").write_text(json.dumps({
        "hyperparameters": settings, "param_count": param_count, "best_epoch": epochs,
        "best_valid_loss": 4.8, "best_valid_ppl": min(valid), "epochs": epochs,
        "train_seconds": 4.0 * epochs, "tokens_per_s": tokens_per_s, "threads": 1,
        "device": "cpu", "gpus": 0, "wall_seconds": 5.0 * epochs,
        "provenance": {  # the fields train writes (tests/test_train.py compares them)
            "python": "3.11.2", "rnnlm": "0.1.0", "mxnet": "1.9.1", "numpy": "2.4.5",
            "snakemake": "9.27.1", "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "git_dirty": False, "host": "test-host", "cpu": "Test CPU", "cpu_count": 2,
            "gpus": [], "train_code": "0123456789abcdef", "mxnet_build": "mxnet 1.9.1 (CPU)",
            "engine": "NaiveEngine", "threads": 1, "device": "cpu",
            "settings_sha256": hashlib.sha256(json.dumps(settings).encode()).hexdigest(),
            "data_sha256": {"train": "a" * 64, "valid": "b" * 64}, "seed": seed,
            "started": "2025-01-01T00:00:00", "finished": "2025-01-01T00:00:10",
            "wall_seconds": 5.0 * epochs,
            "conditions": conditions or quiet(4.0 * epochs, tokens_per_s)}}))
    return run


def quiet(train_seconds, tokens_per_s, threads=1, cpus=2):
    """A run's ``conditions`` on a machine that did nothing else: a full core per thread."""
    return {"cpu_seconds": threads * train_seconds, "cpu_per_wall": float(threads),
            "tokens_per_cpu_s": tokens_per_s / threads, "threads": threads, "cpus": cpus,
            "load_start": 0.4, "load_end": float(threads)}


def contended_conditions(train_seconds, tokens_per_s, load=5.0, share=0.3, cpus=2):
    """A run's ``conditions`` while other jobs held the cores: a high load, a share of one."""
    return {"cpu_seconds": share * train_seconds, "cpu_per_wall": share,
            "tokens_per_cpu_s": tokens_per_s / share, "threads": 1, "cpus": cpus,
            "load_start": load, "load_end": load}


def train_ppl(tokens_seen, seed):
    return 1000 / (1 + tokens_seen / 400) + seed


def make_cache(run, test_ppl_cache, base=None, theta=0.5, lam=0.1, window=500):
    """``run/cache.json`` as the cache stage writes it (``base``: the same stream without the
    cache, default 10% worse)."""
    base = test_ppl_cache * 1.1 if base is None else base
    path = run / "cache.json"
    path.write_text(json.dumps({
        "window": window, "theta": theta, "lambda": lam, "valid_tokens": 900,
        "test_tokens": 1000, "valid_ppl": base + 5, "valid_ppl_cache": test_ppl_cache + 5,
        "test_ppl": base, "test_ppl_cache": test_ppl_cache,
        "grid": [{"theta": theta, "lambda": 0.0, "ppl": base + 5},
                 {"theta": theta, "lambda": lam, "ppl": test_ppl_cache + 5}]}))
    return path
