"""Training: the loop (loop.py), the Trainer subclass with named loss terms (trainer.py, terms.py),
optimizers and schedules (optim.py), dropout (dropout.py), collation and callbacks."""
