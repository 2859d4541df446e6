"""`rnnlm evaluate|cache|dynamic-eval|predict|generate`: what a trained run's model is used for."""

import argparse
from pathlib import Path

from rnnlm.cli.args import (
    add_device_flags,
    add_memory_flag,
    add_threads,
    count,
    fraction,
    nonnegative,
    positive,
    use_threads,
)


def _evaluate(args):
    use_threads(args.threads, args.device)
    from rnnlm.device import check_threads
    from rnnlm.evaluate import evaluate
    from rnnlm.limits import check_evaluate

    check_threads(args.threads)
    check_evaluate(args.run_dir / "model.json", args.bptt, args.data, args.memory_mb, args.device)
    evaluate(args.run_dir, args.data, args.out, split=args.split, bptt=args.bptt,
             device=args.device, gpus=args.gpus)


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="perplexity of a trained model on one split")
    p.add_argument("--run-dir", type=Path, required=True, help="run folder of the train stage")
    p.add_argument("--data", type=Path, required=True, help="(steps, batch) array of the split")
    p.add_argument("--bptt", type=int, default=35,
                   help="steps per forward pass (speed only: the state is carried across)")
    p.add_argument("--split", default="test", help="name recorded in the JSON (key <split>_ppl)")
    p.add_argument("--out", type=Path, required=True, help="output JSON")
    add_device_flags(p)
    add_memory_flag(p)
    p.set_defaults(func=_evaluate)
def _cache(args):
    use_threads(args.threads, args.device)
    from rnnlm.adapt.cache import cache
    from rnnlm.device import check_threads

    check_threads(args.threads)
    cache(args.run_dir, args.valid, args.test, args.out, args.window, args.thetas, args.lambdas,
          device=args.device)


def _add_cache(sub):
    from rnnlm.plan.flags import CACHE_LAMBDAS, CACHE_THETAS

    p = sub.add_parser("cache", help="test perplexity with the continuous cache, its theta and "
                                     "lambda chosen on validation",
                       description="The continuous cache pointer (Grave et al. 2016) over a "
                       "trained run's last layer, as awd-lstm-lm's pointer.py applies it; one "
                       "pass of the model per split, then the whole grid (lambda 0 always in "
                       "it) from the saved outputs and probabilities.")
    p.add_argument("--run-dir", type=Path, required=True, help="run folder of the train stage")
    p.add_argument("--valid", type=Path, required=True,
                   help="(steps, batch) array of the validation split; batch 1 as pointer.py")
    p.add_argument("--test", type=Path, required=True, help="(steps, batch) array of the test "
                                                            "split")
    p.add_argument("--window", type=count, required=True,
                   help="earlier positions the cache holds (awd-lstm-lm: 500 on PTB, 3785 on "
                        "WikiText-2)")
    p.add_argument("--thetas", type=positive, nargs="+", default=list(CACHE_THETAS),
                   help="grid of theta, the sharpness of the cache's softmax")
    p.add_argument("--lambdas", type=fraction, nargs="+", default=list(CACHE_LAMBDAS),
                   help="grid of lambda, the cache's weight in the mixture (0 is always added)")
    p.add_argument("--out", type=Path, required=True, help="output JSON, RUN/cache.json")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="one device")
    add_threads(p)
    p.set_defaults(func=_cache)


def _dynamic_eval(args):
    use_threads(args.threads, args.device)
    from rnnlm.adapt.grid import dynamic_eval
    from rnnlm.device import check_threads
    from rnnlm.limits import check_dynamic
    from rnnlm.plan.flags import dynamic_workers

    check_threads(args.threads)
    cache = None if args.cache_window is None else (args.cache_window, args.thetas, args.lambdas)
    workers = dynamic_workers(args.threads, args.lrs, args.decays) if args.device == "cpu" else 1
    check_dynamic(args.run_dir / "model.json", args.segment, args.train, args.valid, args.test,
                  workers, cache is not None, args.memory_mb, args.device)
    dynamic_eval(args.run_dir, args.train, args.valid, args.test, args.out, args.segment,
                 args.lrs, args.decays, args.rule, args.ms_windows, cache, device=args.device,
                 workers=workers)


def _add_dynamic_eval(sub):
    from rnnlm.plan.flags import (
        CACHE_LAMBDAS,
        CACHE_THETAS,
        DYNAMIC_DECAYS,
        DYNAMIC_LRS,
        MS_WINDOWS,
    )

    p = sub.add_parser("dynamic-eval", help="test perplexity with dynamic evaluation, its lr and "
                                            "decay chosen on validation",
                       description="Dynamic evaluation (Krause et al. 2018): the model takes a "
                       "gradient step after scoring each segment of the batch-1 stream. One "
                       "pass over validation per grid point (lr 0, the static model, always in "
                       "it), the chosen one over test; model.params is never written.")
    p.add_argument("--run-dir", type=Path, required=True, help="run folder of the train stage")
    p.add_argument("--train", type=Path, required=True,
                   help="(steps, batch) array of the training split, for the gradient "
                        "statistics (Krause et al.: batch 100)")
    p.add_argument("--valid", type=Path, required=True, help="batch-1 array of validation")
    p.add_argument("--test", type=Path, required=True, help="batch-1 array of test")
    p.add_argument("--segment", type=count, default=5,
                   help="tokens scored between two updates (Krause et al.: 5)")
    p.add_argument("--lrs", type=nonnegative, nargs="+", default=list(DYNAMIC_LRS),
                   help="grid of the learning rate (0 is always added)")
    p.add_argument("--decays", type=nonnegative, nargs="+", default=list(DYNAMIC_DECAYS),
                   help="grid of the decay toward the trained weights")
    p.add_argument("--rule", choices=("rms", "sgd"), default="rms",
                   help="rms: RMS with global prior, dynamiceval.py's rule; sgd: plain SGD")
    p.add_argument("--ms-windows", type=count, default=MS_WINDOWS,
                   help="windows of the training array the gradient statistics read")
    p.add_argument("--cache-window", type=count,
                   help="also the continuous cache on top of the dynamic pass, this window")
    p.add_argument("--thetas", type=positive, nargs="+", default=list(CACHE_THETAS),
                   help="with --cache-window: grid of the cache's theta")
    p.add_argument("--lambdas", type=fraction, nargs="+", default=list(CACHE_LAMBDAS),
                   help="with --cache-window: grid of the cache's lambda (0 is always added)")
    p.add_argument("--out", type=Path, required=True,
                   help="output JSON, RUN/dynamic_eval.json (RUN/dynamic_eval.npz beside it)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="one device")
    add_threads(p, whose="the gradient statistics; on the CPU, more than 1 also runs that many "
                         "passes at a time, each in a process of one thread")
    add_memory_flag(p)
    p.set_defaults(func=_dynamic_eval)


def _load_trained(args):
    """(model, vocab, context) of the trained run that predict and generate read."""
    use_threads(args.threads, args.device)
    from rnnlm.device import check_threads, contexts
    from rnnlm.predict import load_run

    check_threads(args.threads)
    ctx = contexts(args.device)[0]
    return (*load_run(args.run_dir, args.vocab, ctx), ctx)


def _predict(args):
    import json

    from rnnlm.predict import format_table, predict, write_predictions

    model, vocab, ctx = _load_trained(args)
    records = predict(model, vocab, args.prompts, ctx, args.top_k, args.sentence_start)
    print(json.dumps(records, indent=2) if args.json else format_table(records))
    if args.out:
        write_predictions(args.out, records, args.run_dir, vocab, args.corpus,
                          args.sentence_start)


def _add_run_args(p):
    p.add_argument("--run-dir", type=Path, required=True,
                   help="trained run: results/EXPERIMENT/MODE/seedN")
    p.add_argument("--vocab", type=Path, required=True, help="the vocab.tsv it was trained with")
    p.add_argument("--sentence-start", action=argparse.BooleanOptionalAction, default=True,
                   help="read the prompt after an implicit <eos>, as a sentence start "
                        "(default: on; PTB sentences all follow an <eos>)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="one device")
    add_threads(p)


def _add_predict(sub):
    p = sub.add_parser("predict", help="top-k next words after each prompt, with probabilities",
                       description="Prompts are split on whitespace; words outside the "
                       "vocabulary are read as <unk>, with a warning.")
    _add_run_args(p)
    p.add_argument("--prompts", nargs="+", required=True, metavar="PROMPT",
                   help="one or more prompts, each one quoted argument, e.g. 'the company said'")
    p.add_argument("--top-k", type=int, default=10, help="next words to list per prompt")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", type=Path,
                   help="also write predictions.json (the JSON plus experiment, mode, seed)")
    p.add_argument("--corpus", help="the corpus's name, recorded in predictions.json")
    p.set_defaults(func=_predict)


def _generate(args):
    from rnnlm.predict import as_text, generate, parse_prompt

    model, vocab, ctx = _load_trained(args)
    prompt = parse_prompt(args.prompt, vocab, args.sentence_start)
    words = generate(model, vocab, prompt, ctx, args.words, args.temperature, args.seed)
    print(as_text(args.prompt.split() + words))


def _add_generate(sub):
    p = sub.add_parser("generate", help="sample words after a prompt; <eos> prints a line break")
    _add_run_args(p)
    p.add_argument("--prompt", required=True, help="the words to continue, e.g. 'the market'")
    p.add_argument("--words", type=int, default=50,
                   help="how many words to sample, each <eos> (a line break) counting as one")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="below 1 sharper and safer, above 1 flatter and wilder")
    p.add_argument("--seed", type=int, help="the same seed gives the same text (default: random)")
    p.set_defaults(func=_generate)


def add_commands(sub):
    for add in (_add_evaluate, _add_cache, _add_dynamic_eval, _add_predict, _add_generate):
        add(sub)
