"""Optional features and the pip extra that installs each.

The core install (`pip install tunewise`) trains, evaluates and reports. Heavier features sit behind
extras and import their packages only when used, so `import tunewise` and `tunewise --help` never
load them:

| extra | packages | feature |
|---|---|---|
| `tunewise[tracking]` | mlflow, tensorboard | copies of each run in MLflow / TensorBoard (`output.tracking`) |
| `tunewise[tune]` | optuna | `tunewise tune`: hyperparameter search |
| `tunewise[toxicity]` | alt-profanity-check | the data audit's toxicity check (`data.check.toxicity`) |

A feature whose extra is missing says which extra to install: `require` raises `MissingExtraError`
(a `TunewiseError`) naming it.

    optuna = require("optuna", feature="tunewise tune")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tunewise.errors import TunewiseError

__all__ = ["EXTRAS", "MissingExtraError", "require"]

EXTRAS: dict[str, tuple[str, str]] = {
    "mlflow": ("tracking", "mlflow"),
    "tensorboard": ("tracking", "tensorboard"),
    "optuna": ("tune", "optuna"),
    "profanity_check": ("toxicity", "alt-profanity-check"),
}
"""Top-level module → (the extra that installs it, its package name on PyPI)."""


class MissingExtraError(TunewiseError):
    """An optional feature's package is not installed (or cannot be used).

    Attributes:
        package: the package that is missing, as pip names it, e.g. `alt-profanity-check`.
        extra: the extra that installs it, e.g. `toxicity`.
        feature: what needed it, in words, e.g. `tunewise tune`.
    """

    def __init__(self, package: str, extra: str, feature: str, reason: str = "") -> None:
        self.package, self.extra, self.feature = package, extra, feature
        state = f"which cannot be used ({reason})" if reason else "which is not installed"
        super().__init__(
            f"{feature} needs {package}, {state}: install tunewise[{extra}] (pip install 'tunewise[{extra}]')"
        )


def require(module: str, *, feature: str) -> ModuleType:
    """Import an optional feature's module, or say which extra installs it.

    Args:
        module: an importable name whose top-level package is a key of `EXTRAS`, e.g. `optuna.trial`.
        feature: what needs it, for the message (e.g. `tunewise tune`, `MLflow tracking`).

    Returns:
        The imported module.

    Raises:
        MissingExtraError: the module cannot be imported.
    """
    top = module.partition(".")[0]
    extra, package = EXTRAS[top]
    try:
        importlib.import_module(top)  # first: a missing package is told apart from a broken one
        return importlib.import_module(module)
    except ImportError as err:
        # Not installed; or present but broken (one of its own dependencies missing), which
        # installing the extra fixes too: then the reason is worth showing.
        absent = isinstance(err, ModuleNotFoundError) and err.name == top
        raise MissingExtraError(package, extra, feature, "" if absent else f"{type(err).__name__}: {err}") from None
