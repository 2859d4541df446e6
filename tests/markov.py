"""A random order-2 Markov source whose perplexity is known exactly: a corpus that needs memory.

Each symbol is drawn given the two before it, from a peaked random distribution per context. The
entropy rate follows from the stationary distribution of the pair chain, so a test can ask a
model to get close to the true perplexity, and to beat the best model that remembers only one
symbol (``order1_perplexity``).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlm.batchify import batchify


@dataclass(frozen=True)
class MarkovSource:
    table: np.ndarray  # (S, S, S): table[a, b, c] = P(next = c | two back = a, last = b)

    @property
    def symbols(self):
        return self.table.shape[0]

    def pair_distribution(self):
        """Stationary P(a, b) of consecutive symbols: the fixed point of (a, b) -> (b, c)."""
        s = self.symbols
        step = np.zeros((s * s, s * s))
        for a in range(s):
            for b in range(s):
                step[a * s + b, b * s:(b + 1) * s] = self.table[a, b]
        values, vectors = np.linalg.eig(step.T)
        pi = np.real(vectors[:, np.argmin(np.abs(values - 1))])
        return (pi / pi.sum()).reshape(s, s)

    def perplexity(self):
        """exp of the entropy rate in nats per token: the best any model can do."""
        pairs, table = self.pair_distribution(), self.table
        return float(np.exp(-np.sum(pairs[:, :, None] * table * np.log(table))))

    def order1_perplexity(self):
        """The best perplexity of a model that sees only the last symbol."""
        joint = np.einsum("ab,abc->bc", self.pair_distribution(), self.table)  # P(b, c)
        cond = joint / joint.sum(axis=1, keepdims=True)
        return float(np.exp(-np.sum(joint * np.log(cond))))

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        cum, u = np.cumsum(self.table, axis=-1), rng.random(n)
        out = np.empty(n, dtype=np.int32)
        a, b = rng.integers(self.symbols, size=2)
        for t in range(n):
            c = min(int(np.searchsorted(cum[a, b], u[t], side="right")), self.symbols - 1)
            out[t], a, b = c, b, c
        return out


def make_source(symbols=10, concentration=0.15, seed=0):
    """Context distributions drawn from a Dirichlet: small ``concentration`` = peaked."""
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(symbols, concentration), size=(symbols, symbols))
    table = np.maximum(table, 1e-6)  # every transition possible: the chain is ergodic
    return MarkovSource(table / table.sum(axis=-1, keepdims=True))


SMALL_RUN = {"emsize": 16, "nhid": 16, "nlayers": 1, "dropout": 0, "lr": 0.3, "clip": 1,
             "bptt": 10, "epochs": 1, "log-interval": 20, "threads": 1}


def train_argv(paths, out_dir, mode="lstm", **flags):
    """``rnnlm train`` arguments for a corpus of ``write_corpus``: a small fast model, unless
    ``flags`` (underscores for dashes; True for a bare flag) say otherwise."""
    argv = ["train", "--mode", mode, "--vocab", str(paths["vocab"]), "--train",
            str(paths["train"]), "--valid", str(paths["valid"]), "--out-dir", str(out_dir)]
    for name, value in {**SMALL_RUN, **{k.replace("_", "-"): v for k, v in flags.items()}}.items():
        argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return argv


def write_corpus(folder, source, tokens=(40_000, 8_000, 8_000), batch_sizes=(20, 10, 10),
                 seed=0):
    """vocab.tsv and {train,valid,test}.npy arrays (steps, batch) of one sample of ``source``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = source.sample(sum(tokens), seed=seed)
    bounds = np.cumsum((0, *tokens))
    paths = {"vocab": folder / "vocab.tsv"}
    counts = np.bincount(ids[: tokens[0]], minlength=source.symbols)
    paths["vocab"].write_text("id\tword\tcount\n" + "".join(
        f"{i}\ts{i}\t{c}\n" for i, c in enumerate(counts)))
    for i, (split, batch) in enumerate(zip(("train", "valid", "test"), batch_sizes, strict=True)):
        paths[split] = folder / f"{split}.b{batch}.npy"
        np.save(paths[split], batchify(ids[bounds[i]:bounds[i + 1]], batch))
    return paths
