"""Tunes: an equal-budget search over a base experiment by successive halving (Jamieson and
Talwalkar 2016), every mode at the same points. ``space`` draws the points, ``halving`` decides
which trials go on, ``report`` tabulates and plots a finished tune; rnnlm.plan makes the runs.
"""
