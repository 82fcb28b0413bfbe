"""Evaluation: base vs tuned comparison."""
