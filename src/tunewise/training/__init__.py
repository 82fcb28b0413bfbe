"""Training: the loop (transformers Trainer), collation and callbacks."""
