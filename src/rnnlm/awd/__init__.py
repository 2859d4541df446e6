"""AWD-LSTM's toolbox (Merity et al. 2017, salesforce/awd-lstm-lm), for every recurrent mode:
the dropouts of a window's masks, the activation penalties, the variable windows and the
weight averaging of NT-ASGD. The model, the step and the trainer call these; each is the
identity, or absent, at its off value, so a run that sets none trains as before."""
