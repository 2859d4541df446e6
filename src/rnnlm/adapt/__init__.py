"""Evaluation that adapts to the stream it reads: the continuous cache (cache) and dynamic
evaluation (dynamic), both over a trained run."""
