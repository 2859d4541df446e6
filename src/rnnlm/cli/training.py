"""`rnnlm train|share|watch`: a language model trained (resumable, continuable by a tune's next
rung), an equal run's training given to another run's folder, or the training runs of a results
folder followed as they go."""

import argparse
from pathlib import Path

from rnnlm.cli.args import add_device_flags, add_memory_flag, positive, use_threads
from rnnlm.plan.runs import MODES  # rnnlm.model's, without importing mxnet


def _train(args):
    use_threads(args.threads, args.device)
    from rnnlm.device import check_threads
    from rnnlm.limits import check_train
    from rnnlm.train import train
    from rnnlm.vocab import read_vocab

    check_threads(args.threads)
    vocab = read_vocab(args.vocab)
    model_config, config = train_configs(args, len(vocab))
    check_train(model_config, config, vocab.counts, args.train, args.valid, args.memory_mb,
                args.device)
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
                               div_value=args.div_value,
                               mogrifier_rounds=args.mogrifier_rounds,
                               mogrifier_rank=args.mogrifier_rank)
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
    p.add_argument("--mogrifier-rounds", type=int, default=5,
                   help="mode mogrifier: rounds of x and h gating each other before each step "
                        "(default 5, the paper's PTB model)")
    p.add_argument("--mogrifier-rank", type=int, default=0,
                   help="mode mogrifier: rank of the rounds' matrices (0: full; default)")
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
    add_device_flags(p)
    add_memory_flag(p)
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


def seconds(text):
    """A finite number of seconds > 0 (a watcher's interval)."""
    value = positive(text)
    if value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds")
    return value


def _watch(args):
    from rnnlm.watch import watch

    watch(args.results, args.interval, args.until_done)


def _add_watch(sub):
    p = sub.add_parser("watch", help="follow every training run under a results folder: epoch, "
                       "windows, tokens/s, ETA and perplexities, as bars or (not on a terminal) "
                       "as lines")
    p.add_argument("results", nargs="?", type=Path, default=Path("results"),
                   help="the results folder (default: results); on SLURM, the same folder on "
                   "the shared filesystem")
    p.add_argument("--interval", type=seconds, default=None,
                   help="seconds between looks at the files (default: 2 on a terminal, 60 "
                   "otherwise, a line per running run each time)")
    p.add_argument("--until-done", action="store_true",
                   help="exit when a look finds no run training (default: until Ctrl-C)")
    p.set_defaults(func=_watch)


def add_commands(sub):
    _add_train(sub)
    _add_share(sub)
    _add_watch(sub)
