"""`rnnlm export|score`: a trained run out of MXNet (ONNX, PyTorch), and sentences scored with
the ONNX file by onnxruntime alone."""

import sys
from pathlib import Path

from rnnlm.cli.args import add_threads, use_threads


def _export(args):
    use_threads(args.threads)
    from rnnlm.export.run import export

    export(args.run_dir, args.format, args.out)


def _add_export(sub):
    p = sub.add_parser("export", help="a trained model as ONNX or as a PyTorch state_dict",
                       description="onnx: one step of the model, (ids, state) -> "
                       "(log-probabilities, state), T and B dynamic (README: Export). torch: "
                       "the state_dict of PyTorch's word_language_model RNNModel, written "
                       "without torch, and model.json beside it.")
    p.add_argument("--run-dir", type=Path, required=True,
                   help="trained run: results/EXPERIMENT/MODE/seedN")
    p.add_argument("--format", required=True, help="onnx or torch")
    p.add_argument("--out", type=Path, required=True, help="e.g. RUN/model.onnx or RUN/model.pt")
    add_threads(p)
    p.set_defaults(func=_export)


def _score(args):
    from rnnlm.export.score import Scorer, format_scored, read_sentences, score

    scorer = Scorer(args.model, args.vocab, args.threads)
    for n, line in enumerate(read_sentences(sys.stdin.buffer), 1):  # each printed as it is read
        print(format_scored(n, score(scorer, line)), flush=True)


def add_commands(sub):
    """`rnnlm export`, which loads MXNet once its threads and engine are set, and `rnnlm score`,
    which needs no MXNet."""
    _add_export(sub)
    _add_score(sub)


def _add_score(sub):
    p = sub.add_parser("score", help="per-word log-probabilities and perplexity of sentences "
                       "on stdin, with an exported ONNX model (no MXNet)",
                       description="Reads one sentence per line on stdin (blank lines skipped) "
                       "and prints, per sentence, '# sentence N: ppl P, K tokens' and one "
                       "'word<TAB>log-probability' line per token (natural log). Each sentence "
                       "starts from a zero state after an implicit <eos>, so its first word is "
                       "P(w1 | <eos>) and each next word is conditioned on those before; the "
                       "<eos> ending it is scored too, and its perplexity is exp(-mean "
                       "log-probability) over those words + 1 tokens. Words outside the "
                       "vocabulary are scored as <unk> (with a warning), or refused where the "
                       "vocabulary has none.")
    p.add_argument("--model", type=Path, required=True, help="model.onnx of rnnlm export")
    p.add_argument("--vocab", type=Path, required=True, help="the vocab.tsv it was trained with")
    add_threads(p, "onnxruntime", "its own choice")
    p.set_defaults(func=_score)
