"""Output layers beyond the full softmax: the adaptive softmax (Grave et al. 2017), its clusters
(``clusters``, numpy only) and its Gluon block (``adaptive``)."""
