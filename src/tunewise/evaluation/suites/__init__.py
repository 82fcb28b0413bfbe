"""Built-in evaluation suites, written for tunewise, shipped as package data (see `suite.py`)."""
