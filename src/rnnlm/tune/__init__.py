"""Tunes: an equal-budget search over a base experiment by successive halving (Jamieson and
Talwalkar 2016), every mode at the same points. ``space`` draws the points and ``halving`` decides
which trials go on; rnnlm.plan makes the runs and rnnlm.tune_report tabulates and plots a finished
tune (beside the tables, so that the plan's code digest does not follow the figures').
"""
