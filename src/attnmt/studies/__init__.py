"""Studies: train, evaluate and report several runs on the same data (``compare``), the
offline demo as one such study (``demo``), and the figures they draw (``plots``). The
demo's study file lies beside them (``demo.yaml``)."""
