"""Predict stage: ask a trained model for the next word, or let it write on.

A prompt is split on whitespace; words outside the vocabulary are read as ``<unk>``, with a
warning naming them. Where the vocabulary has no ``<unk>`` such a prompt cannot be read: the
pipeline's predictions record that for the prompt instead of failing the run. By default the
prompt follows an implicit ``<eos>``: in PTB every sentence follows one, so that is the
sentence-start context. The model runs in predict mode (no dropout)
from a zero state; the prompt goes through it as one sequence, which equals feeding it word by
word (tests/test_predict.py checks both).
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np

from rnnlm.io import RnnlmError, write_json
from rnnlm.mx import autograd, nd
from rnnlm.plan.runs import Run
from rnnlm.trained import load_model
from rnnlm.vocab import EOS, UNK, read_vocab

log = logging.getLogger(__name__)


def load_run(run_dir, vocab_path, ctx):
    """The trained model of ``run_dir`` and the vocabulary it was trained with."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RnnlmError(f"{run_dir}: no such run folder; train it first (rnnlm train)")
    vocab = read_vocab(vocab_path)
    model = load_model(run_dir, ctx)
    if model.config.vocab_size != len(vocab):
        raise RnnlmError(f"{run_dir} was trained on {model.config.vocab_size} words but "
                         f"{vocab_path} has {len(vocab)}; pass the vocabulary of its training")
    return model, vocab


class UnreadablePrompt(RnnlmError):
    """A prompt with words the vocabulary cannot read: it has no <unk> to read them as."""


@dataclasses.dataclass(frozen=True)
class Prompt:
    text: str
    tokens: list  # the words after <unk> mapping (without the implicit <eos>)
    unknown: list  # the words that were not in the vocabulary
    ids: list  # the model's input: tokens, after <eos> when the prompt starts a sentence


def parse_prompt(text, vocab, sentence_start=True):
    """Split ``text`` on whitespace and map it to ids; unknown words warn and become <unk>."""
    words = text.split()
    if not words:
        raise RnnlmError("empty prompt; give at least one word, e.g. 'the company said'")
    unknown = vocab.unknown(words)
    if unknown and vocab.unk_id is None:
        words = ", ".join(repr(w) for w in unknown)
        raise UnreadablePrompt(f"prompt {text!r}: {'word' if len(unknown) == 1 else 'words'} "
                               f"{words} not in the vocabulary, which has no {UNK}; use words "
                               "of the training split")
    if unknown:
        hint = any(w != w.lower() or any(c.isdigit() for c in w) for w in unknown)
        log.warning("prompt %r: not in the vocabulary, read as %s: %s%s", text, UNK,
                    " ".join(unknown), " (PTB is lower-case, numbers are N)" if hint else "")
    tokens = [w if w in vocab.index else UNK for w in words]
    start = [vocab.eos_id] if sentence_start else []
    return Prompt(text, tokens, unknown, start + [vocab.index[w] for w in tokens])


def feed(model, ids, ctx, by_word=False):
    """Run ``ids`` through the model from a zero state: last step's logits (V,) and the state."""
    state = model.begin_state(1, ctx)
    steps = [[i] for i in ids] if by_word else [ids]
    with autograd.predict_mode():
        for step in steps:
            x = nd.array(step, ctx=ctx).reshape((-1, 1))  # (T, 1): one column
            logits, state = model(x, state)  # (T, 1, V)
    return logits[-1, 0], state


def softmax(logits, temperature=1.0):
    """Probabilities in float64 on the host (they sum to 1 well within 1e-5)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def next_word_probs(model, prompt, ctx, by_word=False):
    """P(next word | prompt) over the whole vocabulary, shape (V,)."""
    logits, _ = feed(model, prompt.ids, ctx, by_word=by_word)
    return softmax(logits.asnumpy())


def top_words(probs, vocab, k):
    """The ``k`` most probable words, most probable first (ties: lower id, the more frequent)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"word": vocab.words[i], "prob": float(probs[i])} for i in order]


def predict(model, vocab, prompts, ctx, top_k=10, sentence_start=True):
    """One record per prompt: {"prompt", "tokens", "unknown", "top": [{"word", "prob"}, ...]};
    a prompt that cannot be read has an "error" and no "top" words."""
    if top_k < 1:
        raise RnnlmError(f"top_k must be at least 1, got {top_k}")
    records = []
    for text in prompts:
        try:
            p = parse_prompt(text, vocab, sentence_start)
        except UnreadablePrompt as err:
            log.warning("%s", err)
            records.append({"prompt": text, "tokens": [], "unknown": vocab.unknown(text.split()),
                            "error": str(err), "top": []})
            continue
        records.append({"prompt": p.text, "tokens": p.tokens, "unknown": p.unknown,
                        "top": top_words(next_word_probs(model, p, ctx), vocab, top_k)})
    return records


def generate(model, vocab, prompt, ctx, words, temperature=1.0, seed=None):
    """Sample ``words`` words after ``prompt``; the same ``seed`` gives the same words."""
    if temperature <= 0:
        raise RnnlmError(f"temperature must be positive, got {temperature}")
    if words < 0:
        raise RnnlmError(f"words must be at least 0, got {words}")
    rng = np.random.default_rng(seed)
    logits, state = feed(model, prompt.ids, ctx)
    out = []
    with autograd.predict_mode():
        for _ in range(words):
            i = int(rng.choice(len(vocab), p=softmax(logits.asnumpy(), temperature)))
            out.append(vocab.words[i])
            logits, state = model(nd.array([[i]], ctx=ctx), state)  # (1, 1, V)
            logits = logits[-1, 0]
    return out


def as_text(words):
    """Words joined by spaces, each <eos> a line break."""
    lines = [[]]
    for w in words:
        if w == EOS:
            lines.append([])
        else:
            lines[-1].append(w)
    return "\n".join(" ".join(line) for line in lines)


def format_table(records):
    """Plain aligned text: per prompt a heading, then rank, word and probability."""
    blocks = []
    for r in records:
        width = max([4] + [len(t["word"]) for t in r["top"]])
        head = f"prompt: {r['prompt']}"
        if "error" in r:
            blocks.append(f"{head}\n  cannot be read: {r['error']}")
            continue
        if r["unknown"]:
            head += f"  (read as: {' '.join(r['tokens'])})"
        rows = [f"{'rank':>4}  {'word':<{width}}  {'prob':>8}"]
        rows += [f"{n:>4}  {t['word']:<{width}}  {t['prob']:>8.4f}"
                 for n, t in enumerate(r["top"], 1)]
        blocks.append("\n".join([head, *rows]))
    return "\n\n".join(blocks)


def write_predictions(path, records, run_dir, vocab, corpus=None, sentence_start=True):
    """predictions.json of a run: its experiment, mode and seed (from its folder), the corpus and
    vocabulary size it predicts from, and the records."""
    run = Run.of_folder(run_dir)
    write_json(path, {"experiment": run.experiment, "mode": run.mode, "seed": run.seed,
                      "corpus": corpus, "vocab_size": len(vocab),
                      "sentence_start": sentence_start, "predictions": records})
