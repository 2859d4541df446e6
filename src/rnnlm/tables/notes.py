"""What several tables say beneath them: the intervals, the selection protocol, and which rows are
a tune's tuned comparison."""

INTERVAL_NOTE = ("n: runs (seeds) per row. 95% CI: Student t interval of the mean test perplexity "
                 "over the seeds (scipy.stats), on perplexity itself, the scale printed (across "
                 "seeds it moves by a few percent, where it agrees with an interval on "
                 "log-perplexity); empty at n = 1, where the spread is unknown.")
CONTENTION_NOTE = ("tokens/s: training tokens per second of wall time, which other work on "
                   "the same cores stretches. A run is timed under contention when the "
                   "1-minute load average at its start or end exceeded the machine's CPUs, or "
                   "(on CPU) it got under half a CPU-second per second of training; its "
                   "tokens/s understates its speed: compare such rows by tokens/CPU-s "
                   "(training tokens per second of the process's CPU time, which sharing the "
                   "cores barely moves), and only between runs of the same thread count.")
PROTOCOL_NOTE = ("Each run keeps the weights of its best validation epoch and is evaluated on "
                 "test once.")


def tuned_notes(tuned):
    """What the rows of tunes' final runs are: the tuned comparison."""
    return [f"Tuned comparison, {', '.join(tuned)}: each mode at its own choice of the tune "
            "(results/tunes/NAME.md), chosen on validation perplexity by successive halving "
            "with the same points and budget for every mode, then trained afresh with the "
            "tune's seeds and tested once."] if tuned else []
