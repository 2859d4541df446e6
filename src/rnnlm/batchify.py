"""Batchify stage: a split's id stream as a time-major (steps, batch_size) int32 array.

The remainder that does not fill a whole row is dropped, as the tutorial's ``batchify`` does, and
column j holds the j-th contiguous slice of the stream, so a hidden state carried down a column
reads running text. Words outside the vocabulary read as ``<unk>``; the stream is encoded in
chunks, never held as a Python list. The array's SHA-256 goes beside it (rnnlm.io.digest_record),
which every stage that reads it checks (rnnlm.device.load_array).
"""

import logging

import numpy as np

from rnnlm.io import RnnlmError, atomic_path, digest, digest_record, write_text
from rnnlm.vocab import encode_file, read_vocab

log = logging.getLogger(__name__)


def batchify(ids, batch_size, source="input"):
    if batch_size < 1:
        raise RnnlmError(f"batch size must be at least 1, got {batch_size}")
    steps = len(ids) // batch_size
    if steps < 2:
        raise RnnlmError(f"{source}: {len(ids)} tokens are too few for batch size {batch_size} "
                         f"(need at least {2 * batch_size}: an input and a target per column)")
    ids = np.asarray(ids[: steps * batch_size], dtype=np.int32)
    return np.ascontiguousarray(ids.reshape(batch_size, steps).T)  # (steps, batch_size)


def batchify_file(corpus, vocab_path, batch_size, out, blank_lines="skip"):
    """``blank_lines`` as the vocab stage read the corpus (rnnlm.vocab.iter_tokens)."""
    ids = encode_file(corpus, read_vocab(vocab_path), blank_lines)
    batches = batchify(ids, batch_size, source=str(corpus))
    record = digest_record(out)
    record.unlink(missing_ok=True)  # never the digest of the array this one replaces
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, batches)
    write_text(record, f"{digest(out)}  {record.stem}\n")
    log.info("%s: %d steps x %d columns", out, *batches.shape)
    return batches
