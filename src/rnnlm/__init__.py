"""Word-level recurrent language models on Penn Treebank, trained with MXNet Gluon."""

__version__ = "0.1.0"
