"""Render examples into token ids with a loss mask that trains exactly what it should.

The contract, checked by tests on every row of a real dataset:

1. **The prompt the model trains on is the prompt it will be served.** For an assistant turn
   `i`, the ids before its answer are exactly
   `tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True, tokenize=True)` —
   same text, same ids. Rendering the whole conversation once and tokenizing it is *not*
   enough: a tokenizer may merge the last prompt characters with the first answer characters
   differently, and the model then learns a prompt boundary it never sees at inference.
   So each prompt is rendered and tokenized on its own, the answer ids are taken from the
   tokenization of the text through that turn when it extends the prompt ids (its natural
   tokenization), and the pieces are concatenated and checked.
2. **Masking is by position, never by token id.** SmolLM2's end-of-turn `<|im_end|>` is also
   its pad and eos id; a collator that masks every pad id would mask every end of turn, and
   the model would never learn to stop. Here labels are -100 except on trained spans.
3. **The end-of-turn token is trained; the whitespace the template puts after it is not.**
   Generation stops at the end-of-turn token, so the model never produces the `"\\n"` that
   ChatML writes after `<|im_end|>`; it belongs to the template's glue between turns. The
   trained span of an answer therefore ends at its last special token when only whitespace
   follows it (for templates without a special end token, the whole answer is trained).
4. **A row is never silently trained on nothing.** When truncation to `max_length` removes
   every trained token, `render_all` rejects the row with the reason.

`train_on` picks the trained spans: `all_assistant` (every assistant answer), `last_assistant`
(only the final one; earlier turns are context), `everything` (every token, prompts and
template included). Labels at position 0 are always -100: no token precedes it, so it can
never be predicted, and `n_trained` then counts exactly the tokens that contribute to the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from tunewise.data.shapes import Example, Reject
from tunewise.errors import ConfigError, DataError, ModelError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "IGNORE_INDEX",
    "NAMED_TEMPLATES",
    "TRAIN_ON",
    "RenderStats",
    "Rendered",
    "TrainOn",
    "render",
    "render_all",
    "resolve_chat_template",
]

IGNORE_INDEX = -100
"""The label of a position that does not count in the loss (cross-entropy's ignore_index)."""

TrainOn = Literal["all_assistant", "last_assistant", "everything"]
TRAIN_ON: tuple[str, ...] = ("all_assistant", "last_assistant", "everything")

# Chat templates we author, each matching the format its model family was trained with.
# Jinja as transformers renders it (trim_blocks, lstrip_blocks); `bos_token`/`eos_token` are the
# tokenizer's own. None adds a default system prompt: that is a model's choice, not a format's.
NAMED_TEMPLATES: dict[str, str] = {
    # ChatML (Qwen, SmolLM, OpenHermes): <|im_start|>role\ncontent<|im_end|>\n
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    # Llama 3 / 3.1 instruct: the content is trimmed, as Meta's template does.
    "llama3": (
        "{% if bos_token %}{{ bos_token }}{% endif %}"
        "{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
        "+ message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
        "{% endif %}"
    ),
    # Mistral instruct (v0.1/v0.2): [INST] user [/INST]answer</s>. There is no system role;
    # as in Mistral's later templates, the system prompt is prepended to the first user turn.
    # The prompt ends with [/INST], so add_generation_prompt has nothing to add.
    "mistral": (
        "{% if bos_token %}{{ bos_token }}{% endif %}"
        "{% if messages and messages[0]['role'] == 'system' %}"
        "{% set system = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
        "{% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}"
        "{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/...') }}"
        "{% endif %}"
        "{% if message['role'] == 'user' %}"
        "{% if loop.first and system %}"
        "{{ '[INST] ' + system + '\n\n' + message['content'] + ' [/INST]' }}"
        "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
        "{% else %}{{ message['content'] + eos_token }}{% endif %}"
        "{% endfor %}"
    ),
    # Zephyr (HuggingFaceH4/zephyr-7b-beta): <|role|>\ncontent</s>\n
    "zephyr": (
        "{% for message in messages %}"
        "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    ),
}

# Tokens a named template writes literally: without them as single tokens in the vocabulary
# the model cannot learn a real end of turn, so resolve_chat_template refuses the pairing.
_LITERAL_TOKENS = {
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "mistral": (),
    "zephyr": (),
}
_NEEDS_EOS = ("mistral", "zephyr")


def resolve_chat_template(tokenizer: PreTrainedTokenizerBase, name: str | None) -> None:
    """Set the chat template a run renders with.

    Args:
        tokenizer: modified in place (`tokenizer.chat_template`).
        name: one of `NAMED_TEMPLATES`, a path to a `.jinja` file, or None to keep the
            tokenizer's own template.

    Raises:
        ConfigError: the name is unknown, the file is missing or not valid Jinja, or a named
            template writes special tokens this tokenizer does not have (`model.chat_template`).
        ModelError: `name` is None and the tokenizer has no chat template.
    """
    if name is None:
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(
                f"the tokenizer ({getattr(tokenizer, 'name_or_path', '') or 'given'}) has no chat "
                "template, so conversations cannot be rendered. Set model.chat_template: chatml "
                f"(or one of {', '.join(NAMED_TEMPLATES)}, or a path to a .jinja file) — pick "
                "the format the model was trained with, if it was."
            )
        return

    if name in NAMED_TEMPLATES:
        _check_template_tokens(tokenizer, name)
        template = NAMED_TEMPLATES[name]
    else:
        path = Path(name)
        if path.suffix != ".jinja" and not path.is_file():
            raise ConfigError(
                [
                    f"model.chat_template: unknown template {name!r}; use one of "
                    f"{', '.join(NAMED_TEMPLATES)}, or a path to a .jinja file"
                ]
            )
        if not path.is_file():
            raise ConfigError([f"model.chat_template: no such file {name!r}"])
        template = path.read_text(encoding="utf-8")

    previous = getattr(tokenizer, "chat_template", None)
    tokenizer.chat_template = template
    try:  # fail now, on a two-turn chat, rather than on row 1 of the training data
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            tokenize=False,
        )
    except Exception as e:  # jinja raises TemplateSyntaxError, UndefinedError, TypeError...
        tokenizer.chat_template = previous
        raise ConfigError(
            [f"model.chat_template: {name!r} does not render a simple user/assistant chat: {e}"]
        ) from None


def _check_template_tokens(tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    vocab = tokenizer.get_vocab()
    missing = [t for t in _LITERAL_TOKENS[name] if t not in vocab]
    if name in _NEEDS_EOS and tokenizer.eos_token is None:
        missing.append("an eos token")
    if missing:
        raise ConfigError(
            [
                f"model.chat_template: the {name!r} template writes {', '.join(missing)}, which "
                "this tokenizer does not have as a single token, so the model could not learn a "
                "real end of turn. Use the model's own template (leave model.chat_template unset), "
                f"or one built on its eos token ({', '.join(_NEEDS_EOS)})"
            ]
        )


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Rendered:
    """One example as token ids and labels, ready for a collator.

    Attributes:
        source: where the row came from (`file:line`).
        input_ids: the token ids, truncated to `max_length`.
        labels: the same length; the token id where trained, `IGNORE_INDEX` (-100) elsewhere.
        n_tokens: `len(input_ids)`.
        n_trained: positions whose label is not -100 (the tokens that contribute to the loss).
        truncated: whether tokens were cut off the end.
        n_dropped_tokens: how many were cut off.
    """

    source: str
    input_ids: list[int]
    labels: list[int]
    n_tokens: int
    n_trained: int
    truncated: bool
    n_dropped_tokens: int


@dataclass(frozen=True)
class RenderStats:
    """What rendering a dataset did: lengths, truncation, trained share.

    Length statistics are over every row *before* truncation — the numbers to choose
    `max_length` from. Token totals are over the rows kept, *after* truncation.

    Attributes:
        rows: examples rendered.
        rows_truncated: rows longer than `max_length`.
        rows_without_trained_tokens: rows rejected because truncation left nothing to train on.
        tokens_total: tokens in the kept rows.
        tokens_trained: of those, tokens that contribute to the loss.
        tokens_dropped: tokens cut off by truncation, over all rows.
        max_length: the limit rendered with.
        length_min: shortest row, in tokens.
        length_mean: mean row length.
        length_p50: median row length.
        length_p95: 95th percentile row length (nearest rank).
        length_max: longest row.
    """

    rows: int
    rows_truncated: int
    rows_without_trained_tokens: int
    tokens_total: int
    tokens_trained: int
    tokens_dropped: int
    max_length: int
    length_min: int
    length_mean: float
    length_p50: int
    length_p95: int
    length_max: int


@dataclass
class _Plan:
    """The texts one example needs tokenized, and how to assemble them."""

    example: Example
    # Chat: per rendered assistant turn, (prompt text, text through the answer).
    turns: list[tuple[str, str]]
    # Chat: the whole conversation when user turns follow the last assistant turn.
    tail: str | None
    # Which assistant turn number (1-based) each entry of `turns` is, for error messages.
    turn_numbers: list[int]


def _check_train_on(train_on: str) -> None:
    if train_on not in TRAIN_ON:
        raise ConfigError([f"data.train_on: must be one of {', '.join(TRAIN_ON)}, not {train_on!r}"])


def _render_texts(
    conversations: list[list[dict[str, str]]], tokenizer: PreTrainedTokenizerBase, *, prompt: bool
) -> list[str]:
    if not conversations:
        return []
    # One batched call: transformers renders each conversation separately, identically to a
    # single call, but pays its per-call setup once.
    out = tokenizer.apply_chat_template(conversations, add_generation_prompt=prompt, tokenize=False)
    return list(out)


def _plan(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, train_on: str) -> list[_Plan]:
    """Render every text the examples need (batched) and check the template's prefix property."""
    prompt_convs: list[list[dict[str, str]]] = []
    full_convs: list[list[dict[str, str]]] = []
    layout: list[tuple[Example, list[int], bool]] = []
    for ex in examples:
        if ex.messages is None:
            layout.append((ex, [], False))
            continue
        messages = [dict(m) for m in ex.messages]
        answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if train_on == "last_assistant":
            answers = answers[-1:]
        for i in answers:
            prompt_convs.append(messages[:i])
            full_convs.append(messages[: i + 1])
        has_tail = messages[-1]["role"] != "assistant"
        if has_tail:
            full_convs.append(messages)
        layout.append((ex, answers, has_tail))

    prompts = iter(_render_texts(prompt_convs, tokenizer, prompt=True))
    fulls = iter(_render_texts(full_convs, tokenizer, prompt=False))
    plans: list[_Plan] = []
    for ex, answers, has_tail in layout:
        if ex.messages is None:
            plans.append(_Plan(ex, [], None, []))
            continue
        all_answers = [i for i, m in enumerate(ex.messages) if m["role"] == "assistant"]
        numbers = [all_answers.index(i) + 1 for i in answers]
        turns = [(next(prompts), next(fulls)) for _ in answers]
        tail = next(fulls) if has_tail else None
        _check_prefixes(ex, turns, tail, numbers)
        plans.append(_Plan(ex, turns, tail, numbers))
    return plans


def _check_prefixes(
    ex: Example,
    turns: list[tuple[str, str]],
    tail: str | None,
    numbers: list[int],
) -> None:
    previous = ""
    for (prompt, full), n in zip(turns, numbers):
        if not prompt.startswith(previous):
            raise _template_error(
                ex,
                f"the prompt for assistant turn {n} does not start with the rendered conversation up to turn {n - 1}",
                previous,
                prompt,
                earlier_turns=True,
            )
        if not full.startswith(prompt):
            raise _template_error(
                ex,
                f"the text through assistant turn {n} does not "
                f"start with the prompt for it (add_generation_prompt=True)",
                prompt,
                full,
                earlier_turns=False,
            )
        previous = full
    if tail is not None and not tail.startswith(previous):
        raise _template_error(
            ex,
            "the whole conversation does not start with the text through its last assistant turn",
            previous,
            tail,
            earlier_turns=False,
        )


def _template_error(
    ex: Example,
    what: str,
    expected_prefix: str,
    text: str,
    *,
    earlier_turns: bool,
) -> DataError:
    at = next(
        (i for i, (a, b) in enumerate(zip(expected_prefix, text)) if a != b), min(len(expected_prefix), len(text))
    )
    hint = (
        " Templates that rewrite earlier turns (e.g. drop their reasoning) cannot train every "
        "turn in one sequence; set data.train_on: last_assistant."
        if earlier_turns
        else ""
    )
    return DataError(
        f"{ex.source}: the chat template cannot be trained turn by turn: {what} (they differ at "
        f"character {at}: {expected_prefix[at : at + 40]!r} vs {text[at : at + 40]!r}), so the "
        f"prompt the model trains on would not be the prompt it is served.{hint} Otherwise "
        f"set model.chat_template to one of {', '.join(NAMED_TEMPLATES)}."
    )


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    ids = set(tokenizer.all_special_ids)
    for i, token in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(token, "special", False):
            ids.add(i)
    return frozenset(ids)


def _is_whitespace(tokenizer: PreTrainedTokenizerBase, ids: list[int], cache: dict[int, bool]) -> bool:
    for i in ids:
        if i not in cache:
            # decode gives a list only for a batch of sequences; one flat id list decodes to a str.
            cache[i] = not cast(str, tokenizer.decode([i])).strip()
        if not cache[i]:
            return False
    return True


class _Assembler:
    """Turns plans plus token ids into `Rendered` rows; holds per-tokenizer caches."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, train_on: str, max_length: int) -> None:
        if max_length < 2:
            raise ConfigError([f"data.max_length: must be at least 2, not {max_length}"])
        self.tokenizer = tokenizer
        self.train_on = train_on
        self.max_length = max_length
        self.special = _special_ids(tokenizer)
        self.whitespace: dict[int, bool] = {}

    def texts(self, plan: _Plan) -> list[str]:
        if plan.example.messages is None:
            return []
        out = [t for turn in plan.turns for t in turn]
        if plan.tail is not None:
            out.append(plan.tail)
        return out

    def assemble(self, plan: _Plan, ids: list[list[int]]) -> tuple[Rendered, int]:
        """Return the row and the length of its untrained prefix (for reject messages)."""
        if plan.example.messages is None:
            full, labels = self._text(plan.example.text or "")
        else:
            full, labels = self._chat(plan, ids)
        if labels:
            labels[0] = IGNORE_INDEX  # nothing precedes it: it can never be predicted
        prompt_len = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
        dropped = max(0, len(full) - self.max_length)
        full, labels = full[: self.max_length], labels[: self.max_length]
        rendered = Rendered(
            source=plan.example.source,
            input_ids=full,
            labels=labels,
            n_tokens=len(full),
            n_trained=sum(1 for label in labels if label != IGNORE_INDEX),
            truncated=dropped > 0,
            n_dropped_tokens=dropped,
        )
        return rendered, prompt_len

    def _text(self, text: str) -> tuple[list[int], list[int]]:
        tok = self.tokenizer
        # add_special_tokens=True: a tokenizer that starts documents with BOS gets it here, as
        # in pretraining; the EOS teaches the model where a document ends.
        ids = list(tok(text, add_special_tokens=True)["input_ids"])
        if tok.eos_token_id is not None and (not ids or ids[-1] != tok.eos_token_id):
            ids.append(tok.eos_token_id)
        return ids, list(ids)

    def _chat(self, plan: _Plan, token_lists: list[list[int]]) -> tuple[list[int], list[int]]:
        everything = self.train_on == "everything"
        ids: list[int] = []
        labels: list[int] = []

        def add(piece: list[int], trained: bool) -> None:
            ids.extend(piece)
            labels.extend(piece if (trained or everything) else [IGNORE_INDEX] * len(piece))

        pieces = iter(token_lists)
        for (prompt_text, full_text), n in zip(plan.turns, plan.turn_numbers):
            prompt, through = next(pieces), next(pieces)
            if prompt[: len(ids)] != ids:
                raise self._boundary_error(plan, n)
            add(prompt[len(ids) :], trained=False)
            if through[: len(prompt)] == prompt:
                answer = through[len(prompt) :]
            else:
                # The answer's first characters merge with the prompt's last ones when
                # tokenized together; tokenize the answer alone so the prompt stays exact.
                answer = list(self.tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"])
            end = self._trained_end(answer)
            add(answer[:end], trained=True)
            add(answer[end:], trained=False)
        if plan.tail is not None:
            whole = next(pieces)
            if whole[: len(ids)] != ids:
                raise self._boundary_error(plan, None)
            add(whole[len(ids) :], trained=False)
        return ids, labels

    def _trained_end(self, answer: list[int]) -> int:
        """Index after the answer's trained part: its last special token, if whitespace follows."""
        for i in range(len(answer) - 1, -1, -1):
            if answer[i] in self.special:
                tail = answer[i + 1 :]
                glue = _is_whitespace(self.tokenizer, tail, self.whitespace)
                return i + 1 if glue else len(answer)
        return len(answer)

    def _boundary_error(self, plan: _Plan, turn: int | None) -> DataError:
        where = f"the prompt for assistant turn {turn}" if turn else "the trailing user turn"
        return DataError(
            f"{plan.example.source}: the chat template's turn boundary tokenizes differently in "
            f"context: the ids of {where}, tokenized on their own, do not start with the ids of "
            "the conversation before it, so no single sequence can give every turn the exact "
            "prompt it is served with. Set data.train_on: last_assistant (one prompt per row), "
            f"or model.chat_template to one of {', '.join(NAMED_TEMPLATES)}."
        )


def _tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Tokenize texts exactly as `apply_chat_template(..., tokenize=True)` does.

    That is `tokenizer(text, add_special_tokens=False)` — the template writes its own special
    tokens. For fast tokenizers the Rust backend's `encode_batch_fast` gives the same ids
    about 2.5x faster (no offsets, masks or Python objects); `_backend_agrees` checks that on
    the first texts and falls back to the ordinary call if it ever does not.
    """
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_batch_fast") and _backend_agrees(tokenizer, texts[:4]):
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _backend_agrees(tokenizer: PreTrainedTokenizerBase, sample: list[str]) -> bool:
    # Checked on every batch (a few short texts, well under a millisecond) rather than cached:
    # a difference would come from the tokenizer's configuration, and a cache keyed on the
    # tokenizer object could outlive it.
    fast = [e.ids for e in tokenizer.backend_tokenizer.encode_batch_fast(sample, add_special_tokens=False)]
    slow = [list(x) for x in tokenizer(sample, add_special_tokens=False)["input_ids"]]
    return fast == slow


def render(
    example: Example,
    tokenizer: PreTrainedTokenizerBase,
    *,
    train_on: TrainOn = "all_assistant",
    max_length: int = 2048,
) -> Rendered:
    """Render one example into ids and labels (see the module docstring for the contract).

    Args:
        example: a chat example (rendered with `tokenizer.chat_template`) or a text example
            (tokenized as is, EOS appended).
        tokenizer: its chat template is used as set (see `resolve_chat_template`).
        train_on: `all_assistant`, `last_assistant` or `everything`.
        max_length: keep at most this many tokens, from the left.

    Returns:
        The rendered row; `n_trained` may be 0 when truncation cut every trained token
        (`render_all` rejects such rows).

    Raises:
        DataError: the chat template cannot be trained turn by turn (prefix property fails).
        ConfigError: `train_on` or `max_length` is invalid.
    """
    _check_train_on(train_on)
    assembler = _Assembler(tokenizer, train_on, max_length)
    (plan,) = _plan([example], tokenizer, train_on)
    return assembler.assemble(plan, _tokenize(tokenizer, assembler.texts(plan)))[0]


def render_all(
    examples: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    *,
    train_on: TrainOn = "all_assistant",
    max_length: int = 2048,
    batch_size: int = 512,
) -> tuple[list[Rendered], RenderStats, list[Reject]]:
    """Render many examples; reject rows left with nothing to train on.

    Rendering and tokenization are batched (`batch_size` examples per call), which keeps a
    few thousand rows to about a second on a CPU.

    Args:
        examples: the examples, in order.
        tokenizer: its chat template is used as set.
        train_on: `all_assistant`, `last_assistant` or `everything`.
        max_length: keep at most this many tokens per row, from the left.
        batch_size: examples rendered and tokenized per batch.

    Returns:
        `(rendered, stats, rejects)`: the kept rows in order, the statistics, and a `Reject`
        for each row whose trained tokens were all cut by truncation.

    Raises:
        DataError: the chat template cannot be trained turn by turn.
        ConfigError: `train_on` or `max_length` is invalid.
    """
    _check_train_on(train_on)
    assembler = _Assembler(tokenizer, train_on, max_length)
    kept: list[Rendered] = []
    rejects: list[Reject] = []
    lengths: list[int] = []
    truncated = dropped = 0
    for start in range(0, len(examples), batch_size):
        plans = _plan(examples[start : start + batch_size], tokenizer, train_on)
        texts = [assembler.texts(p) for p in plans]
        flat = _tokenize(tokenizer, [t for group in texts for t in group])
        offset = 0
        for plan, group in zip(plans, texts):
            row, prompt_len = assembler.assemble(plan, flat[offset : offset + len(group)])
            offset += len(group)
            lengths.append(row.n_tokens + row.n_dropped_tokens)
            truncated += row.truncated
            dropped += row.n_dropped_tokens
            if row.n_trained == 0:
                rejects.append(
                    Reject(
                        plan.example.source,
                        f"no trained tokens left after truncation to max_length={max_length} "
                        f"(prompt is {prompt_len} tokens); raise data.max_length or shorten the prompt",
                        _as_row(plan.example),
                    )
                )
            else:
                kept.append(row)
    stats = RenderStats(
        rows=len(examples),
        rows_truncated=truncated,
        rows_without_trained_tokens=len(rejects),
        tokens_total=sum(r.n_tokens for r in kept),
        tokens_trained=sum(r.n_trained for r in kept),
        tokens_dropped=dropped,
        max_length=max_length,
        **_length_stats(lengths),
    )
    return kept, stats, rejects


def _as_row(example: Example) -> dict[str, Any]:
    if example.messages is not None:
        return {"messages": [dict(m) for m in example.messages]}
    return {"text": example.text}


def _length_stats(lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return dict(length_min=0, length_mean=0.0, length_p50=0, length_p95=0, length_max=0)
    ordered = sorted(lengths)

    def rank(q: float) -> int:  # nearest-rank percentile: always an observed length
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return dict(
        length_min=ordered[0],
        length_mean=sum(ordered) / len(ordered),
        length_p50=rank(0.50),
        length_p95=rank(0.95),
        length_max=ordered[-1],
    )
