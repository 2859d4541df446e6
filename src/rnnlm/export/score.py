"""``rnnlm score``: per-word log-probabilities and perplexity of sentences, from model.onnx with
onnxruntime alone (no MXNet: what a service would run).

Each sentence is scored on its own, as the pipeline's corpora read it (a line ending in <eos>):
the state starts at zero, the first word is conditioned on an implicit <eos> (every PTB sentence
follows one; ``rnnlm predict`` starts prompts the same way), each next word on those before, and
the <eos> that ends the sentence is scored too. Its perplexity is exp(-mean log-probability) over
those n + 1 tokens; log-probabilities are natural logarithms.
"""

import dataclasses
import logging
import math

import numpy as np
import onnxruntime

from rnnlm.export.to_onnx import INPUT, OUTPUT
from rnnlm.io import RnnlmError, iter_lines
from rnnlm.vocab import EOS, UNK, read_vocab

log = logging.getLogger(__name__)


class Scorer:
    """An onnxruntime session of an exported model and the vocabulary it was trained with."""

    def __init__(self, model_path, vocab_path, threads=0):
        self.vocab = read_vocab(vocab_path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(model_path), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own (Fail, InvalidProtobuf, NoSuchFile)
            first = str(err).strip().splitlines()[0]
            raise RnnlmError(f"{model_path}: not a model onnxruntime can load ({first}); "
                             "write it with rnnlm export --format onnx") from None
        outputs = self.session.get_outputs()
        if outputs[0].name != OUTPUT or len(outputs[0].shape) != 3:
            raise RnnlmError(f"{model_path}: no {OUTPUT} output (T, B, vocab): not a model of "
                             "rnnlm export --format onnx")
        self.states = [(i.name, i.shape[2]) for i in self.session.get_inputs() if i.name != INPUT]
        size = outputs[0].shape[2]
        if size != len(self.vocab):
            raise RnnlmError(f"{model_path} predicts {size} words but {vocab_path} has "
                             f"{len(self.vocab)}; pass the vocabulary of its training")

    def zero_state(self, batch=1):
        return {name: np.zeros((1, batch, h), dtype=np.float32) for name, h in self.states}

    def step(self, ids, state):
        """log-probabilities (T, B, V) after ``ids`` (T, B) from ``state``, and the new state."""
        log_probs, *new = self.session.run(None, {INPUT: np.asarray(ids, dtype=np.int64), **state})
        return log_probs, dict(zip(state, new, strict=True))

    def ids(self, words):
        """Ids of ``words``: unknown ones as <unk> (with a warning), refused without one."""
        unknown = self.vocab.unknown(words)
        if unknown and self.vocab.unk_id is None:
            raise RnnlmError(f"{' '.join(unknown)}: not in the vocabulary, which has no {UNK}; "
                             "score sentences of its words only")
        if unknown:
            log.warning("not in the vocabulary, scored as %s: %s", UNK, " ".join(unknown))
        return [self.vocab.index.get(w, self.vocab.unk_id) for w in words]


@dataclasses.dataclass(frozen=True)
class Scored:
    words: list  # the sentence's words and the final <eos>
    log_probs: list  # natural log-probability of each, given those before

    @property
    def perplexity(self):
        return math.exp(-sum(self.log_probs) / len(self.log_probs))


def score(scorer, sentence):
    """The Scored ``sentence`` (whitespace-separated words)."""
    words = sentence.split()
    eos = scorer.vocab.eos_id
    ids = [eos, *scorer.ids(words), eos]
    log_probs, _ = scorer.step(np.array(ids[:-1])[:, None], scorer.zero_state())  # (T, 1, V)
    picked = log_probs[np.arange(len(ids) - 1), 0, ids[1:]]
    return Scored([*words, EOS], [float(p) for p in picked])


def read_sentences(stream, source="stdin"):
    """The non-blank lines of a binary stream, decoded, as the vocab stage reads a corpus (\\n,
    \\r\\n or a lone \\r ends a line; bytes that are not UTF-8 are refused naming the line);
    a stream without one is refused too, rather than printing nothing."""
    empty = True
    for number, raw in enumerate(iter_lines(stream), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RnnlmError(f"{source}: line {number} is not UTF-8 ({err.reason} at byte "
                             f"{err.start} of the line); give UTF-8 text, one sentence per "
                             "line") from None
        if line.strip():
            empty = False
            yield line
    if empty:
        raise RnnlmError(f"{source} held no sentence (nothing, or blank lines only); give one "
                         "sentence per line, e.g. echo 'the cat sat' | rnnlm score ...")


def format_scored(number, scored):
    """A heading with the perplexity, then one ``word<TAB>log-probability`` line per token."""
    rows = [f"{w}\t{p:.6f}" for w, p in zip(scored.words, scored.log_probs, strict=True)]
    return "\n".join([f"# sentence {number}: ppl {scored.perplexity:.4f}, "
                      f"{len(scored.words)} tokens", *rows])
