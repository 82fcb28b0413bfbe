"""Tiny random models for tests: the default model's shape, shrunk to build in milliseconds.

The tokenizer, config and model here mirror `smollm2-135m-instruct` in everything a test can
notice — byte-level BPE, the ChatML chat template with its default system prompt, special tokens
`<|endoftext|>`/`<|im_start|>`/`<|im_end|>` at ids 0/1/2, `pad_token_id == eos_token_id == 2`,
`LlamaForCausalLM` with tied embeddings and grouped-query attention — but with 2 layers, a hidden
size of 32 and a vocabulary of a few hundred tokens. Nothing touches the network.

Example:
    >>> from tunewise.testing import tiny_model, tiny_tokenizer
    >>> tok, model = tiny_tokenizer(), tiny_model(seed=0)
    >>> ids = tok("hello", return_tensors="pt").input_ids
    >>> model(ids).logits.shape[-1] == len(tok)
    True
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = [
    "CHATML_TEMPLATE",
    "SPECIAL_TOKENS",
    "save_tiny_model",
    "tiny_model",
    "tiny_model_config",
    "tiny_tokenizer",
]

# Copied from the GGUF metadata of SmolLM2-135M-Instruct (`tokenizer.chat_template`): a system
# turn with SmolLM's default prompt is added when the conversation does not start with one.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Same ids as the real model: 0, 1, 2.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_VOCAB_SIZE = 512

# A small English corpus so the BPE learns real-looking merges (words, spaces, punctuation).
# Byte-level BPE still encodes any text, including characters never seen here.
_CORPUS = """\
The quick brown fox jumps over the lazy dog. A language model predicts the next token.
You are a helpful AI assistant. What is the capital of France? The capital of France is Paris.
Fine-tuning adapts a pretrained model to a new task, but it can forget what it knew before.
Please answer the question in one sentence. Thank you! Here is a short summary of the text.
The user asked for help with a math problem: 2 + 2 = 4, and 12 * 3 = 36.
Water boils at 100 degrees Celsius at sea level. The sun rises in the east and sets in the west.
Translate the following sentence into French: "Good morning, how are you today?"
Write a poem about the sea. Explain why the sky is blue. List three colors: red, green, blue.
Instruction: classify the sentiment of this review. Input: I loved this movie. Output: positive.
system user assistant question answer instruction input output response context example data
"""


@functools.lru_cache(maxsize=1)
def _build_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    # Same pre-tokenizer/decoder family as SmolLM2 (GPT-2 style byte level, no prefix space).
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        # All 256 byte symbols are in the vocabulary, so no text is ever unknown.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Return a byte-level BPE tokenizer shaped like SmolLM2's, built offline.

    Special tokens: `<|endoftext|>` (0, also unk), `<|im_start|>` (1, bos), `<|im_end|>` (2, eos
    and pad — the same id, as in the real model). The chat template is SmolLM2's ChatML one.

    Returns:
        A fresh copy (callers may add tokens or change padding side without affecting others).
    """
    return copy.deepcopy(_build_tokenizer())


def tiny_model_config(tokenizer: PreTrainedTokenizerFast | None = None, **overrides: Any) -> LlamaConfig:
    """Return a 2-layer `LlamaConfig` with the default model's architecture, shrunk.

    Args:
        tokenizer: sets `vocab_size`; the tiny tokenizer when None.
        **overrides: any `LlamaConfig` field (e.g. `num_hidden_layers=4`).

    Returns:
        The config: hidden 32, 4 heads / 2 KV heads (GQA), tied embeddings, float32.
    """
    from transformers import LlamaConfig

    tok = tokenizer if tokenizer is not None else _build_tokenizer()
    fields: dict[str, Any] = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def tiny_model(seed: int = 0, **overrides: Any) -> LlamaForCausalLM:
    """Return a randomly initialised tiny `LlamaForCausalLM` in float32.

    Args:
        seed: same seed, same weights (the global torch RNG state is left untouched).
        **overrides: passed to `tiny_model_config`.

    Returns:
        The model in eval mode.
    """
    import torch
    from transformers import LlamaForCausalLM

    config = tiny_model_config(**overrides)
    # fork_rng keeps the caller's RNG stream unchanged, so building a model mid-test is harmless.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # transformers wraps PreTrainedModel.to in functools.wraps, whose typeshed type does not bind `self`.
        model = LlamaForCausalLM(config).to(torch.float32)  # type: ignore[arg-type]
    return model.eval()


def save_tiny_model(path: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny model and its tokenizer to a directory, loadable as a local-path model.

    Args:
        path: the directory (created if missing).
        seed: passed to `tiny_model`.
        **overrides: passed to `tiny_model_config`.

    Returns:
        The directory.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tiny_model(seed=seed, **overrides).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path
