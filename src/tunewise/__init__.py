"""tunewise: fine-tune language models and measure what the fine-tune gained and what it cost.

The library API mirrors the CLI: `load_config` builds the typed config, `train`, `evaluate` and
`run` are the verbs. Heavy modules (torch, transformers) load only when a verb runs.
"""

from __future__ import annotations

import logging

from tunewise.config import Config, load_config
from tunewise.errors import ConfigError, DataError, ModelError, TunewiseError

__version__ = "0.1.0"

# bitsandbytes (imported with peft) warns at every import, on CPUs with AVX512-BF16, that an optional
# hub kernel is not installed; it then uses its own CPU kernel, so the warning is noise on every run.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "ModelError",
    "TunewiseError",
    "__version__",
    "evaluate",
    "load_config",
    "run",
    "train",
]


def __getattr__(name: str):
    # The verbs import torch and transformers; keep `import tunewise` (and the CLI's --help) fast.
    if name in ("train", "evaluate", "run"):
        import importlib

        package = importlib.import_module("tunewise.run")  # callable: `tunewise.run(config)` is the run verb
        return package if name == "run" else getattr(package, name)
    raise AttributeError(f"module 'tunewise' has no attribute {name!r}")
