"""Export stage: a trained run out of MXNet, to ONNX (``to_onnx``) and to a PyTorch state_dict
(``to_torch``), and ``score``, which reads the ONNX file with onnxruntime alone.

``layout`` turns a run's arrays into layers whose sizes come from the arrays' shapes; ``run``
loads the run through rnnlm.trained (the only module here that reaches MXNet). ``score`` and the
writers import neither MXNet nor torch: a service, and the pipeline, need neither.
"""
