"""`rnnlm <stage>`: one subcommand per pipeline stage, the entry point every Snakemake rule calls.

Flags reuse the config schema's key names. Errors the user can fix (RnnlmError) print one line
and exit 1 (128 + the signal when a stopped run saved its checkpoint); anything else is a bug and
keeps its traceback. The subcommands that tabulate and plot finished runs are in rnnlm.cli_results,
export and score in rnnlm.cli_export.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from rnnlm.cli_export import add_export_commands
from rnnlm.cli_results import RESULT_COMMANDS
from rnnlm.cli_tune import add_tune_commands
from rnnlm.io import BLANK_LINES, RnnlmError
from rnnlm.plan import MODES  # rnnlm.model's, without importing mxnet

log = logging.getLogger("rnnlm")


def _download(args):
    from rnnlm.data import SPLITS, Source, download

    files = dict(zip(SPLITS, args.files, strict=True)) if args.files else None
    source = Source(args.corpus, args.url, files=files, archive=args.archive, file=args.file,
                    split=tuple(args.split), digests=dict(args.digest))
    download(source, args.out_dir, retries=args.retries)


def _count(text):
    """An integer >= 1 (a count of attempts, words, occurrences)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not an integer >= 1")
    return value


def _digest(text):
    """KEY=ALGO:HEX as (key, "algo:hex"); the digest itself is checked with the corpus."""
    key, _, digest = text.partition("=")
    if key not in ("archive", "file", "train", "valid", "test") or not digest:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=ALGO:HEX with KEY one of "
                                         "archive, file, train, valid, test")
    return key, digest


def _add_download(sub):
    p = sub.add_parser("download", help="fetch a corpus, verify it, write train/valid/test.txt",
                       description="Fetch a corpus's three splits (three files, three members "
                       "of an archive, or one file to split) into OUT_DIR as train.txt, "
                       "valid.txt and test.txt, each digest given checked before any is "
                       "written.")
    p.add_argument("--corpus", required=True, help="the corpus's name, for messages")
    p.add_argument("--url", required=True,
                   help="base location: http(s)://, file:// or a directory")
    shape = p.add_mutually_exclusive_group(required=True)
    shape.add_argument("--files", nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                       help="the three splits' names under --url (or in --archive)")
    shape.add_argument("--file", help="one text under --url, cut into three by --split")
    p.add_argument("--archive", help="a .zip or .tar.gz under --url whose members --files are")
    p.add_argument("--split", nargs=2, type=float, default=(0.1, 0.1), metavar=("VALID", "TEST"),
                   help="with --file: the last TEST fraction of its non-blank lines is test, the "
                        "VALID fraction before them valid, the rest train (default 0.1 0.1)")
    p.add_argument("--digest", nargs="+", type=_digest, action="extend", default=[],
                   metavar="KEY=ALGO:HEX",
                   help="expected digest (ALGO sha256 or sha1) of the archive, the file, or a "
                        "split (train, valid, test); none: the files are taken as they are")
    p.add_argument("--out-dir", type=Path, required=True, help="e.g. resources/NAME")
    p.add_argument("--retries", type=_count, default=3,
                   help="attempts per file on network errors, 1 s, 2 s, 4 s ... apart")
    p.set_defaults(func=_download)


def _vocab(args):
    from rnnlm.vocab import build_vocab_files

    build_vocab_files(args.train, args.valid, args.test, args.vocab, args.stats,
                      max_size=args.max_size, min_count=args.min_count,
                      blank_lines=args.blank_lines)


def _add_vocab(sub):
    p = sub.add_parser("vocab", help="vocabulary from the training split, and corpus statistics")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--valid", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True, help="output TSV: id, word, count")
    p.add_argument("--stats", type=Path, required=True, help="output JSON of corpus statistics")
    p.add_argument("--max-size", type=_count,
                   help="at most this many words, <eos> and <unk> included: the most frequent "
                        "(default: every word of the training split)")
    p.add_argument("--min-count", type=_count, default=1,
                   help="keep only words seen this often in the training split (default 1)")
    _add_blank_lines(p)
    p.set_defaults(func=_vocab)


def _add_blank_lines(p):
    p.add_argument("--blank-lines", choices=BLANK_LINES, default="skip",
                   help="a blank line reads as nothing (skip, the default) or as an <eos> of its "
                        "own (eos: WikiText as GluonNLP and awd-lstm-lm read it); vocab and "
                        "batchify must agree")


def _batchify(args):
    from rnnlm.batchify import batchify_file

    batchify_file(args.corpus, args.vocab, args.batch_size, args.out, args.blank_lines)


def _add_batchify(sub):
    p = sub.add_parser("batchify", help="id stream of a split as an int32 (steps, batch) array")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--vocab", type=Path, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="output .npy")
    _add_blank_lines(p)
    p.set_defaults(func=_batchify)


def _use_threads(threads, device="cpu"):
    """MXNet reads its CPU thread counts and its engine once, when libmxnet loads: set them before
    a stage module imports mxnet (the handlers import their stage lazily for this). --threads 0
    keeps MXNet's counts.

    On the CPU the operators run one after another in the calling thread (NaiveEngine): the
    threaded engine's hand-offs cost a fifth of a small window on 2 cores and buy nothing there
    (benchmarks/README.md). GPUs keep the threaded engine, which overlaps copies and kernels. A
    MXNET_ENGINE_TYPE set by the user wins."""
    if device == "cpu":
        os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")
    if threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MXNET_OMP_MAX_THREADS"] = str(threads)
        os.environ["MXNET_CPU_WORKER_NTHREADS"] = "1"  # one engine worker runs n-thread operators


def _add_device_flags(p):
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--gpus", type=int, default=1,
                   help="with --device gpu: GPUs to split each batch across (data parallel)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for MXNet's operators (default 0: MXNet's own choice)")


def _train(args):
    _use_threads(args.threads, args.device)
    from rnnlm.device import check_threads
    from rnnlm.train import train
    from rnnlm.vocab import read_vocab

    check_threads(args.threads)
    model_config, config = train_configs(args, len(read_vocab(args.vocab)))
    train(model_config, config, args.train, args.valid, args.out_dir, args.device, args.gpus,
          keep_state=args.keep_state, continue_from=args.continue_from,
          record_divergence=args.record_divergence)


def train_configs(args, vocab_size):
    """(ModelConfig, TrainConfig) of parsed `rnnlm train` arguments."""
    from rnnlm.model import ModelConfig
    from rnnlm.train import TrainConfig

    model_config = ModelConfig(args.mode, vocab_size, emsize=args.emsize,
                               nhid=args.nhid, nlayers=args.nlayers, dropout=args.dropout,
                               dropout_e=args.dropout_e, dropout_i=args.dropout_i,
                               dropout_h=args.dropout_h, dropout_o=args.dropout_o,
                               weight_dropout=args.weight_dropout, tied=args.tied,
                               init_range=args.init_range, rnn_init=args.rnn_init,
                               softmax=args.softmax, cutoffs=tuple(args.cutoffs or ()),
                               div_value=args.div_value)
    config = TrainConfig(lr=args.lr, clip=args.clip, clip_per=args.clip_per, epochs=args.epochs,
                         bptt=args.bptt, seed=args.seed, lr_schedule=args.lr_schedule,
                         restore_best=args.restore_best,
                         decay_after=args.decay_after, decay_factor=args.decay_factor,
                         max_batches=args.max_batches, log_interval=args.log_interval,
                         checkpoint_minutes=args.checkpoint_minutes, alpha=args.alpha,
                         beta=args.beta, wd=args.wd, variable_bptt=args.variable_bptt,
                         optimizer=args.optimizer, nonmono=args.nonmono,
                         finetune_epochs=args.finetune_epochs)
    return model_config, config


def _share(args):
    from rnnlm.share import share

    share(args.trained, args.out_dir)


def _add_share(sub):
    p = sub.add_parser("share", help="give a run the training outputs of an equal run "
                       "(the workflow's share rule: equal settings are trained once)")
    p.add_argument("--from", dest="trained", type=Path, required=True,
                   help="the run folder that trained, e.g. results/tutorial/lstm/seed1")
    p.add_argument("--out-dir", type=Path, required=True,
                   help="the equal run's folder: gets its files and summary.json's shared_from")
    p.set_defaults(func=_share)


def _add_train(sub):
    p = sub.add_parser("train", help="train one language model (resumes from its checkpoint)")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--vocab", type=Path, required=True, help="vocab.tsv of the vocab stage")
    p.add_argument("--train", type=Path, required=True, help="(steps, batch) array: batch size")
    p.add_argument("--valid", type=Path, required=True, help="(steps, eval batch) array")
    p.add_argument("--out-dir", type=Path, required=True,
                   help="run folder: model.params, model.json, metrics.csv, summary.json")
    p.add_argument("--emsize", type=int, default=100, help="embedding size")
    p.add_argument("--nhid", type=int, default=100, help="hidden units per layer")
    p.add_argument("--nlayers", type=int, default=2, help="recurrent layers")
    p.add_argument("--dropout", type=float, default=0.2,
                   help="dropout around and between layers, a mask per step")
    awd = "(AWD-LSTM's, default 0: off) "
    p.add_argument("--dropout-e", type=float, default=0.0,
                   help=awd + "whole words of the embedding dropped, a mask per window")
    p.add_argument("--dropout-i", type=float, default=0.0,
                   help=awd + "on the embedding's output, one mask per window over time")
    p.add_argument("--dropout-h", type=float, default=0.0,
                   help=awd + "between layers, one mask per window over time")
    p.add_argument("--dropout-o", type=float, default=0.0,
                   help=awd + "on the last layer's output, one mask per window over time")
    p.add_argument("--weight-dropout", type=float, default=0.0,
                   help=awd + "DropConnect on the hidden-to-hidden weights, a mask per window")
    p.add_argument("--tied", action=argparse.BooleanOptionalAction, default=True,
                   help="decoder shares the embedding matrix (with nhid != emsize, the last "
                        "layer has emsize units)")
    p.add_argument("--softmax", choices=("full", "adaptive"), default="full",
                   help="the decoder: full softmax over the vocabulary, or the adaptive softmax "
                        "(Grave et al. 2017) with --cutoffs")
    p.add_argument("--cutoffs", type=int, nargs="+", metavar="RANK",
                   help="adaptive: word ranks (ids) where the tail clusters start, increasing, "
                        "below the vocabulary size, e.g. 2000 6000")
    p.add_argument("--div-value", type=float, default=4.0,
                   help="adaptive, untied: tail cluster i projects to units / div^i (default 4)")
    p.add_argument("--init-range", type=float, default=0.1, help="weights start in +-this")
    p.add_argument("--rnn-init", choices=("init_range", "pytorch"), default="init_range",
                   help="pytorch: recurrent weights and biases start in +-1/sqrt(nhid), as "
                        "PyTorch's nn.LSTM does (default: init_range, biases 0)")
    p.add_argument("--lr", type=float, default=1.0, help="SGD learning rate per example")
    p.add_argument("--clip", type=float, default=0.2,
                   help="gradient norm cap (applied as clip * bptt * batch, see --clip-per)")
    p.add_argument("--clip-per", choices=("token", "example"), default="token",
                   help="token: clip bounds the mean token loss's gradient (MXNet tutorial); "
                        "example: the loss summed over steps, averaged over the batch "
                        "(Zaremba et al., TF ptb_word_lm; applied as clip * batch)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--bptt", type=int, default=5, help="steps of back-propagation per window")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr-schedule", choices=("plateau", "fixed"), default="plateau",
                   help="plateau: x0.25 and back to the best weights when validation stalls; "
                        "fixed: x decay-factor every epoch after decay-after")
    p.add_argument("--restore-best", action=argparse.BooleanOptionalAction, default=True,
                   help="plateau schedule: also go back to the best weights (the MXNet "
                        "tutorial); --no-restore-best trains on (the PyTorch example)")
    p.add_argument("--decay-after", type=int, default=0, help="fixed schedule: first epoch E")
    p.add_argument("--decay-factor", type=float, default=0.25, help="fixed schedule: factor f")
    p.add_argument("--max-batches", type=int, default=None,
                   help="cap on windows per epoch (smoke tests, benchmarks; default all)")
    p.add_argument("--alpha", type=float, default=0.0,
                   help=awd + "AR: alpha * mean of the last layer's dropped output squared")
    p.add_argument("--beta", type=float, default=0.0,
                   help=awd + "TAR: beta * mean of its undropped output's steps squared")
    p.add_argument("--wd", type=float, default=0.0,
                   help="weight decay on the mean token loss (default 0)")
    p.add_argument("--variable-bptt", action=argparse.BooleanOptionalAction, default=False,
                   help="AWD-LSTM's window lengths: bptt, or bptt / 2 with probability 0.05, "
                        "then N(that, 5), at least 5")
    p.add_argument("--optimizer", choices=("sgd", "nt-asgd"), default="sgd",
                   help="nt-asgd: SGD at a constant lr, its weights averaged once validation "
                        "is worse than the best before the last --nonmono checks")
    p.add_argument("--nonmono", type=int, default=5, help="nt-asgd: see --optimizer")
    p.add_argument("--finetune-epochs", type=int, default=0,
                   help="then up to this many epochs averaging anew from the best weights "
                        "(awd-lstm-lm's finetune.py)")
    _add_device_flags(p)
    p.add_argument("--log-interval", type=int, default=200, help="windows between reports")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="also checkpoint mid-epoch this often (always after each epoch)")
    tune = "(a tune's trial) "
    p.add_argument("--keep-state", type=Path, default=None,
                   help=tune + "keep the final checkpoint in this folder")
    p.add_argument("--continue-from", type=Path, default=None,
                   help=tune + "continue the checkpoint kept there by a run of the same "
                        "settings to fewer epochs")
    p.add_argument("--record-divergence", action="store_true",
                   help=tune + "a diverging run ends with its outputs, summary.json saying "
                        "diverged, instead of an error")
    p.set_defaults(func=_train)


def _evaluate(args):
    _use_threads(args.threads, args.device)
    from rnnlm.device import check_threads
    from rnnlm.evaluate import evaluate

    check_threads(args.threads)
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
    _add_device_flags(p)
    p.set_defaults(func=_evaluate)


def _positive(text):
    """A number > 0 (a cache theta)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number > 0")
    return value


def _fraction(text):
    """A number in [0, 1) (a cache lambda)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a number in [0, 1)")
    return value


def _cache(args):
    _use_threads(args.threads, args.device)
    from rnnlm.cache import cache
    from rnnlm.device import check_threads

    check_threads(args.threads)
    cache(args.run_dir, args.valid, args.test, args.out, args.window, args.thetas, args.lambdas,
          device=args.device)


def _add_cache(sub):
    from rnnlm.plan import CACHE_LAMBDAS, CACHE_THETAS

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
    p.add_argument("--window", type=_count, required=True,
                   help="earlier positions the cache holds (awd-lstm-lm: 500 on PTB, 3785 on "
                        "WikiText-2)")
    p.add_argument("--thetas", type=_positive, nargs="+", default=list(CACHE_THETAS),
                   help="grid of theta, the sharpness of the cache's softmax")
    p.add_argument("--lambdas", type=_fraction, nargs="+", default=list(CACHE_LAMBDAS),
                   help="grid of lambda, the cache's weight in the mixture (0 is always added)")
    p.add_argument("--out", type=Path, required=True, help="output JSON, RUN/cache.json")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="one device")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for MXNet's operators (default 0: MXNet's own choice)")
    p.set_defaults(func=_cache)


def _load_trained(args):
    """(model, vocab, context) of the trained run that predict and generate read."""
    _use_threads(args.threads, args.device)
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
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for MXNet's operators (default 0: MXNet's own choice)")


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


def build_parser():
    parser = argparse.ArgumentParser(prog="rnnlm", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_download, _add_vocab, _add_batchify, _add_train, _add_share, _add_evaluate,
                _add_cache, _add_predict, _add_generate, *RESULT_COMMANDS):
        add(sub)
    add_export_commands(sub, _use_threads)
    add_tune_commands(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        args.func(args)
    except RnnlmError as err:
        print(f"rnnlm {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
