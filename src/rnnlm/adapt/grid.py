"""Dynamic evaluation of a trained run, chosen on validation and applied to test once: the
gradient statistics on the training split, one dynamic pass over validation per (lr, decay) of
the grid (lr 0, the static model, always in it, so validation never gets worse), the chosen
pair over test; optionally the continuous cache on top of the dynamic pass, its theta and lambda
chosen on validation over that pass's log-probabilities and last-layer outputs.

Writes ``dynamic_eval.json`` and, beside it, ``dynamic_eval.npz``: the per-token log-probability
of the test stream, static and dynamic, for the plot of perplexity over the stream.
"""

import logging
import math
import time
from pathlib import Path

import numpy as np

from rnnlm.adapt import cache as cache_pointer
from rnnlm.adapt.dynamic import RULES, Adapter, decay_rates, gradient_statistics
from rnnlm.adapt.finished import Finished, Resuming, job_key
from rnnlm.adapt.passes import Pass, Runner
from rnnlm.device import contexts, load_array
from rnnlm.io import RnnlmError, atomic_path, write_json
from rnnlm.mx import nd
from rnnlm.plan.flags import (
    DYNAMIC_DECAYS,
    DYNAMIC_LRS,
    MS_WINDOWS,
    dynamic_workers,
    grid_points,
)
from rnnlm.provenance import code_digest
from rnnlm.trained import load_model, trained_run

log = logging.getLogger(__name__)


def check_settings(segment, lrs, decays, rule, ms_windows):
    """The one-line refusals, naming the key, before the model loads."""
    if segment < 1:
        raise RnnlmError(f"dynamic_eval segment must be at least 1, got {segment}")
    for key, values in (("lr", lrs), ("decay", decays)):
        if not values:
            raise RnnlmError(f"dynamic_eval {key} is an empty grid; give at least one value")
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise RnnlmError(f"dynamic_eval {key} must be finite numbers >= 0, got {list(values)}")
    if rule not in RULES:
        raise RnnlmError(f"dynamic_eval rule must be one of {', '.join(RULES)}, got {rule!r}")
    if ms_windows < 1:
        raise RnnlmError(f"dynamic_eval ms_windows must be at least 1, got {ms_windows}")


def ppl(logp):
    """Perplexity of the log-probabilities; inf for a pass that diverged (a step too large for
    the model: its losses overflow or turn NaN), which is then never chosen."""
    loss = -float(np.mean(logp))
    return math.exp(loss) if loss < math.log(np.finfo(float).max) else math.inf


def finite_or_none(value):
    """JSON has no infinity: a diverged grid point's perplexity is written null."""
    return value if math.isfinite(value) else None


def with_cache(valid, test, window, thetas, lambdas):
    """The cache on top of a dynamic pass: ``valid`` and ``test`` each (logp (N,), h (N, H),
    targets (N,)) of one stream; theta and lambda chosen on validation by the cache's own
    scoring (rnnlm.adapt.cache), applied to test once."""
    def probs(split, chosen):
        logp, hidden, targets = split
        return cache_pointer.stream_cache_probs(hidden[:, None], targets[:, None], window, chosen)

    grid, theta, lam = cache_pointer.choose(valid[0][:, None], probs(valid, thetas), thetas,
                                            lambdas)
    test_loss = cache_pointer.mixed_loss(test[0][:, None], probs(test, [theta]), lam)[0]
    return {"cache_window": window, "cache_theta": theta, "cache_lambda": lam,
            "valid_ppl_dynamic_cache": min(point["ppl"] for point in grid),
            "test_ppl_dynamic_cache": math.exp(test_loss)}


def ranking(on_valid):
    """The order of passes over validation, best first: perplexity, then grid order (the first
    of equals, so a tie keeps the static model)."""
    return lambda job, logp: (ppl(logp), on_valid.index(job))


def choose_then_test(runner, on_valid, static_test):
    """Run the passes over validation and the static one over test, choose on validation, and
    run the chosen point's pass over test: ({valid Pass: (log p, seconds)}, (valid ppl, index
    of the chosen point, its last-layer outputs), {(lr, decay): (test log p, outputs)}).

    When a worker has nothing left to run while the last passes over validation end, it starts
    the test pass of the best point so far, kept if that point stays the best. If another wins,
    its test pass starts when validation ends, as it would have anyway, and the early one, begun
    before it, ends before it: the early start can save a whole pass and never costs one."""
    for job in [*on_valid[1:], on_valid[0], static_test]:  # the static passes last: shortest
        runner.submit(job)
    results, best, tested, asked = {}, None, {}, set()
    ongoing, rank = set(on_valid), ranking(on_valid)
    for job, logp, hidden, seconds in runner.results():
        if job.split == "test":
            tested[job.lr, job.decay] = (logp, hidden)
        else:
            results[job] = (logp, seconds)
            ongoing.remove(job)
            log.info("%s: valid ppl %.2f in %.0f s (%.0f tokens/s)%s", job.label, ppl(logp),
                     seconds, logp.size / seconds, "" if math.isfinite(ppl(logp)) else
                     ": diverged, never chosen (lower the lr grid)")
            ranked = rank(job, logp)
            if best is None or ranked < best[:2]:
                best = (*ranked, hidden)  # the cache reads the best pass's outputs alone
        leader = on_valid[best[1]] if best else None
        if (leader and leader.lr and (leader.lr, leader.decay) not in asked
                and (not ongoing or runner.idle())):
            if ongoing:
                log.info("a worker is free: the test pass of the best point on validation so far "
                         "(lr %g, decay %g) starts now, kept if it stays the best", leader.lr,
                         leader.decay)
            asked.add((leader.lr, leader.decay))
            runner.submit(Pass("test", leader.lr, leader.decay, f"test, dynamic (lr "
                               f"{leader.lr:g}, decay {leader.decay:g})", static_test.hidden))
    return results, best, tested


def statistics(finished, model, train, segment, ms_windows):
    """(MS arrays, windows read, seconds): ``finished``'s, kept by a job that stopped, else
    computed (rnnlm.adapt.dynamic.gradient_statistics) and kept."""
    kept = finished.statistics()
    if kept is not None:
        return [nd.array(m, ctx=train.context) for m in kept[0]], *kept[1:]
    began = time.monotonic()
    ms, windows = gradient_statistics(model, train, segment, ms_windows)
    seconds = time.monotonic() - began
    finished.keep_statistics([m.asnumpy() for m in ms], windows, seconds)
    return ms, windows, seconds


def dynamic_eval(run_dir, train_path, valid_path, test_path, out, segment=5, lrs=DYNAMIC_LRS,
                 decays=DYNAMIC_DECAYS, rule="rms", ms_windows=MS_WINDOWS, cache=None,
                 device="cpu", workers=1):
    """Choose lr and decay on validation, apply them to test once; write the JSON and the npz.
    ``cache``: None, or (window, thetas, lambdas) for the cache on top of the dynamic pass.
    ``workers``: passes run at a time, each in a process of its own when more than 1."""
    check_settings(segment, lrs, decays, rule, ms_windows)
    if cache is not None:
        cache_pointer.check_grid(*cache)
    began = time.monotonic()
    ctx = contexts(device)[0]
    model = load_model(trained_run(run_dir, "dynamic evaluation"), ctx)
    vocab = model.config.vocab_size
    paths, streams = {"valid": valid_path, "test": test_path}, {}
    for split, path in paths.items():
        streams[split] = load_array(path, vocab, [ctx])[0]
        if streams[split].shape[1] != 1:
            raise RnnlmError(f"{path}: dynamic evaluation reads a batch-1 stream, this array has "
                             f"{streams[split].shape[1]} columns; pass the .b1.npy array")
        if cache is not None:
            cache_pointer.check_window(streams[split], path, cache[0])
    targets = {s: a[1:].asnumpy().astype(np.int64)[:, 0] for s, a in streams.items()}
    train = load_array(train_path, vocab, [ctx])[0]
    finished = Finished(Path(out).with_suffix(".parts"), job_key(
        run_dir, {"train": train_path, **paths}, segment=segment, rule=rule,
        ms_windows=ms_windows, hidden=cache is not None, device=device,
        code=code_digest("adapt")))  # a pass of other code is not this job's
    ms, windows, ms_seconds = statistics(finished, model, train, segment, ms_windows)
    log.info("%s: gradient statistics over %d windows of %d x %d tokens in %.0f s", run_dir,
             windows, segment, train.shape[1], ms_seconds)
    rates = decay_rates(ms)
    adapter = Adapter(model, ctx, ms, rates)

    points = grid_points(lrs, decays)
    on_valid = [Pass("valid", lr, decay, f"grid point {i}/{len(points)} (lr {lr:g}, decay "
                     f"{decay:g}) on valid", hidden=cache is not None)
                for i, (lr, decay) in enumerate(points, 1)]
    static_test = Pass("test", 0.0, 0.0, "test, static", hidden=cache is not None)
    start = (run_dir, paths, [m.asnumpy() for m in ms], [r.asnumpy() for r in rates], rule,
             segment, device)
    with Runner(adapter, streams, rule, segment, dynamic_workers(workers, lrs, decays),
                start) as runner:
        results, best, tested = choose_then_test(Resuming(runner, finished, ranking(on_valid)),
                                                 on_valid, static_test)
    grid = [{"lr": job.lr, "decay": job.decay, "valid_ppl": finite_or_none(ppl(results[job][0])),
             "seconds": results[job][1]} for job in on_valid]
    chosen = on_valid[best[1]]
    test_static, test_dynamic = tested[0.0, 0.0], tested[chosen.lr, chosen.decay]
    result = {"rule": rule, "segment": segment, "ms_windows": windows,
              "ms_windows_asked": ms_windows, "ms_batch": train.shape[1], "lr": chosen.lr,
              "decay": chosen.decay, "valid_tokens": targets["valid"].size,
              "test_tokens": targets["test"].size, "valid_ppl": grid[0]["valid_ppl"],
              "valid_ppl_dynamic": grid[best[1]]["valid_ppl"], "test_ppl": ppl(test_static[0]),
              "test_ppl_dynamic": finite_or_none(ppl(test_dynamic[0])), "grid": grid,
              "ms_seconds": ms_seconds, "workers": runner.workers}
    if cache is not None:
        result.update(with_cache((results[chosen][0], best[2], targets["valid"]),
                                 (*test_dynamic, targets["test"]), *cache))
    result["seconds"] = time.monotonic() - began
    with atomic_path(Path(out).with_suffix(".npz")) as tmp, open(tmp, "wb") as f:
        np.savez(f, test_logp_static=test_static[0], test_logp_dynamic=test_dynamic[0])
    write_json(out, result)
    finished.remove()
    log.info("%s: %s rule, lr %g, decay %g (chosen on validation): valid ppl %.2f -> %.2f, test "
             "ppl %.2f -> %.2f", run_dir, rule, chosen.lr, chosen.decay, result["valid_ppl"],
             result["valid_ppl_dynamic"], result["test_ppl"], result["test_ppl_dynamic"])
    return result
