"""Recurrent cells that MXNet's fused RNN operator cannot run: each steps through its window."""
