"""Base and tuned in one model, for the methods that change base weights (full, freeze, gradual_unfreeze).

An adapter method leaves the base weights alone, so its base model is the adapter switched off.
A method that trains base weights overwrites them; so before training it keeps a CPU copy of the
original value of every parameter it may train (`keep_originals`). That copy is what

- `as_base` swaps in for the base side of every comparison (and out again afterwards),
- `save_tuned` compares against to write only the tensors that changed (full fine-tuning writes
  the whole model instead, loadable on its own), and
- `load_tuned` recreates in `tunewise eval`: base weights from the model, tuned ones from the run.

The copy costs memory equal to the trainable parameters (the whole model for `full`), in CPU RAM.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tunewise.errors import TunewiseError
from tunewise.rundir import write_json

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

__all__ = ["MANIFEST", "TUNED_WEIGHTS", "as_base", "keep_originals", "load_tuned", "originals", "save_tuned"]

MANIFEST = "tunewise_method.json"
"""Names the method and the weights file in an `adapter/` directory that is not a PEFT adapter."""
TUNED_WEIGHTS = "tuned_parameters.safetensors"
"""The trained parameters that changed, by name (freeze, gradual_unfreeze)."""
_ATTRIBUTE = "_tunewise_originals"
_Model = TypeVar("_Model", bound="torch.nn.Module")  # a transformers model, or a PEFT model wrapping one


def keep_originals(model: PreTrainedModel, names: Iterable[str]) -> None:
    """Keep a CPU copy of these parameters' current values: the base model of later comparisons."""
    params = dict(model.named_parameters())
    # A model on the meta device (`tunewise plan` counts parameters on one) has no values to keep.
    kept = {name: params[name].detach().to("cpu", copy=True) for name in names if not params[name].is_meta}
    setattr(model, _ATTRIBUTE, kept)


def originals(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The base values kept by `keep_originals` or `load_tuned`, or None (an adapter model)."""
    return getattr(model, _ATTRIBUTE, None)


@contextlib.contextmanager
def as_base(model: _Model) -> Iterator[_Model]:
    """Make `model` the base model for the duration: adapters disabled, or the original values of
    the trained parameters swapped in. Nothing is copied on CPU; on a GPU the originals are moved
    over for the duration. Nests safely."""
    disable_adapter = getattr(model, "disable_adapter", None)  # a PEFT model's context manager
    if disable_adapter is not None:
        with disable_adapter():
            yield model
        return
    kept = originals(model)
    if not kept:
        yield model
        return
    params = dict(model.named_parameters())
    trained = {}
    for name, original in kept.items():
        param = params[name]
        trained[name] = param.data
        param.data = original.to(param.device, param.dtype)
    try:
        yield model
    finally:
        for name, data in trained.items():
            params[name].data = data


def save_tuned(model: PreTrainedModel, directory: Path, method_type: str) -> list[str]:
    """Write what `load_tuned` needs to rebuild the tuned model on top of the base model.

    PEFT methods: the adapter (PEFT's own format). `full`: the whole model (`save_pretrained`,
    loadable on its own). Others: the parameters that differ from their originals, in
    `tuned_parameters.safetensors`. Every non-PEFT directory holds `tunewise_method.json`.

    Returns:
        The names of the parameters written (empty for a PEFT adapter).
    """
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    if hasattr(model, "peft_config"):
        model.save_pretrained(directory)
        return []
    kept = originals(model) or {}
    directory.mkdir(parents=True, exist_ok=True)
    if method_type == "full":
        model.save_pretrained(directory)
        written = [name for name, _ in model.named_parameters()]
        weights = "model"
    else:
        changed = {
            name: param.detach().to("cpu").contiguous()
            for name, param in model.named_parameters()
            if name in kept and not torch.equal(param.detach().to("cpu"), kept[name])
        }
        save_file(changed, str(directory / TUNED_WEIGHTS))
        written, weights = sorted(changed), TUNED_WEIGHTS
    manifest = {"type": method_type, "weights": weights, "trained": sorted(kept), "changed": written}
    write_json(directory / MANIFEST, manifest, default=None)
    return written


def _saved_tensors(directory: Path, weights: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = [directory / weights] if weights != "model" else sorted(directory.glob("*.safetensors"))
    if not files or not all(f.is_file() for f in files):
        raise TunewiseError(
            f"{directory}: the tuned weights ({weights}) are missing; the run directory is incomplete — train it again"
        )
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        tensors.update(load_file(str(file)))
    return tensors


def load_tuned(model: PreTrainedModel, directory: Path) -> PreTrainedModel:
    """Turn a freshly loaded base model into the tuned model saved in `directory` (by `save_tuned`).

    A PEFT adapter is attached with its base left untouched; saved parameters replace their base
    values, which are kept as the originals so `as_base` still gives the base model.
    """
    directory = Path(directory)
    if (directory / "adapter_config.json").is_file():
        from peft import PeftModel

        from tunewise.methods.prompt_learning import align_logits
        from tunewise.methods.qlora import exact_cpu_kernels

        if getattr(model, "is_loaded_in_4bit", False):
            exact_cpu_kernels(model)  # score exactly as the model right after training did
        return align_logits(PeftModel.from_pretrained(model, directory))
    manifest_file = directory / MANIFEST
    if not manifest_file.is_file():
        raise TunewiseError(
            f"{directory} holds neither a PEFT adapter (adapter_config.json) nor tuned weights "
            f"({MANIFEST}); was it written by `tunewise train`?"
        )
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    tensors = _saved_tensors(directory, manifest["weights"])
    # remove_duplicate=False: a tied matrix may be saved under either of its names.
    params = dict(model.named_parameters(remove_duplicate=False))
    unknown = sorted(set(tensors) - set(params))
    buffers = dict(model.named_buffers())
    if any(name not in buffers for name in unknown):
        raise TunewiseError(
            f"{directory}: saved weights {', '.join(unknown[:3])} do not exist in "
            f"{type(model).__name__}; was this run trained on another model?"
        )
    kept: dict[str, torch.Tensor] = {}
    installed: set[int] = set()
    canonical = {id(p): n for n, p in model.named_parameters()}
    for name, tensor in tensors.items():
        if name not in params:
            continue  # a persistent buffer (saved by save_pretrained); buffers are never trained
        param = params[name]
        if id(param) in installed:
            continue
        installed.add(id(param))
        kept[canonical[id(param)]] = param.data.to("cpu")  # the same tensor on CPU: no copy
        param.data = tensor.to(param.device, param.dtype)
    setattr(model, _ATTRIBUTE, kept)
    return model
