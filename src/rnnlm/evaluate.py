"""Evaluate stage: perplexity of a run's best parameters on one batchified split."""

import logging
import math

from rnnlm.device import contexts, load_array
from rnnlm.io import write_json
from rnnlm.step import eval_graph, split_loss
from rnnlm.trained import load_model

log = logging.getLogger(__name__)


def evaluate(run_dir, data_path, out, split="test", bptt=35, device="cpu", gpus=1):
    """Mean token loss and perplexity of ``run_dir``'s model on ``data_path``, written as JSON.

    The state is carried across windows, so ``bptt`` changes only the speed, not the result.
    """
    ctxs = contexts(device, gpus)
    model = load_model(run_dir, ctxs)
    parts = load_array(data_path, model.config.vocab_size, ctxs)
    loss, tokens = split_loss(eval_graph(model, parts, bptt), parts, bptt)
    result = {"split": split, "tokens": tokens, "loss": loss, "perplexity": math.exp(loss),
              f"{split}_ppl": math.exp(loss)}
    write_json(out, result)
    log.info("%s: %s perplexity %.2f over %d tokens", run_dir, split, math.exp(loss), tokens)
    return result
