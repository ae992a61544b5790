"""Training: the one loop for one process or many (``loop``), what each task brings to it
(``tasks``), the run state and learning-rate schedule (``progress``), the weight average
(``ema``) and the machine facts the loop needs (``runtime``)."""
