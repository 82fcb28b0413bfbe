"""Rendering with a loss mask (tunewise.data.templates) and its preview (tunewise.data.preview).

The invariants: the prompt trained on is byte- and id-identical to the prompt served; only
assistant answers (through their end-of-turn token) are trained; masking is by position, so the
end-of-turn token is trained although it equals the pad id; nothing is silently trained on
nothing after truncation.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tunewise.data import (
    IGNORE_INDEX,
    NAMED_TEMPLATES,
    Example,
    Rendered,
    load_examples,
    preview,
    render,
    render_all,
    resolve_chat_template,
)
from tunewise.data.preview import CLOSE, OPEN
from tunewise.errors import ConfigError, DataError, ModelError
from tunewise.testing import tiny_tokenizer

# ../shared/data beside the checkout: read in place, never copied into the repository.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ALPACA_DEMO = SHARED_DATA / "llamafactory_demo" / "alpaca_en_demo.json"


@pytest.fixture(scope="module")
def tok() -> Any:
    return tiny_tokenizer()


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


CHATS = {
    "single": (msg("user", "What is the capital of France?"), msg("assistant", "Paris.")),
    "system_multi": (
        msg("system", "Answer in one sentence."),
        msg("user", "Why is the sky blue?"),
        msg("assistant", "Because air scatters blue light more."),
        msg("user", "And sunsets?"),
        msg("assistant", "Light crosses more air, so red remains.\n"),  # content ends in "\n"
    ),
    "three_turns": (
        msg("user", "2 + 2?"),
        msg("assistant", "4"),
        msg("user", "12 * 3?"),
        msg("assistant", "36"),
        msg("user", "Thank you!"),
        msg("assistant", "You are welcome. Ünïcødé ✓"),
    ),
    "trailing_user": (msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "Bye")),
}


def chat_ids(tok: Any, messages: Any, **kw: Any) -> list[int]:
    return list(tok.apply_chat_template(list(messages), tokenize=True, return_dict=False, **kw))


def trained_runs(r: Rendered) -> list[list[int]]:
    """Maximal runs of consecutive trained positions, as token ids."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(r.input_ids, r.labels):
        trained = label != IGNORE_INDEX
        if trained and not previous:
            runs.append([])
        if trained:
            runs[-1].append(token)
        previous = trained
    return runs


def decode(tok: Any, ids: list[int]) -> str:
    return tok.decode(ids, clean_up_tokenization_spaces=False)


def assert_labels_copy_ids(r: Rendered) -> None:
    assert len(r.labels) == len(r.input_ids) == r.n_tokens
    assert all(lab in (IGNORE_INDEX, tid) for tid, lab in zip(r.input_ids, r.labels))
    assert r.labels[0] == IGNORE_INDEX
    assert r.n_trained == sum(lab != IGNORE_INDEX for lab in r.labels)


# --------------------------------------------------------------------------- the mask


@pytest.mark.parametrize("name", list(CHATS))
def test_only_assistant_answers_and_their_end_of_turn_are_trained(tok: Any, name: str) -> None:
    messages = CHATS[name]
    r = render(Example("f:1", messages), tok, train_on="all_assistant", max_length=4096)
    assert_labels_copy_ids(r)
    answers = [m["content"] + "<|im_end|>" for m in messages if m["role"] == "assistant"]
    # Each trained run is exactly one assistant answer with its end-of-turn token: no prompt,
    # system or template token is trained, and no answer token is left out.
    assert [decode(tok, run) for run in trained_runs(r)] == answers
    assert r.input_ids == chat_ids(tok, messages)  # the whole row is the template's rendering


@pytest.mark.parametrize("name", list(CHATS))
def test_every_turn_is_trained_after_exactly_its_served_prompt(tok: Any, name: str) -> None:
    messages = CHATS[name]
    r = render(Example("f:1", messages), tok, max_length=4096)
    starts = [i for i in range(1, r.n_tokens) if r.labels[i] != IGNORE_INDEX and r.labels[i - 1] == IGNORE_INDEX]
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    assert len(starts) == len(turns)
    for start, i in zip(starts, turns):
        prompt_ids = chat_ids(tok, messages[:i], add_generation_prompt=True)
        prompt_text = tok.apply_chat_template(list(messages[:i]), add_generation_prompt=True, tokenize=False)
        assert r.input_ids[:start] == prompt_ids  # id-identical
        assert decode(tok, r.input_ids[:start]) == prompt_text  # byte-identical


def test_end_of_turn_is_trained_although_it_is_the_pad_id(tok: Any) -> None:
    assert tok.pad_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    r = render(Example("f:1", CHATS["system_multi"]), tok)
    eot = tok.pad_token_id
    positions = [i for i, t in enumerate(r.input_ids) if t == eot]
    trained = [i for i in positions if r.labels[i] != IGNORE_INDEX]
    assert len(trained) == 2  # one per assistant turn
    assert all(r.labels[i] == eot for i in trained)
    # Masking is by position: the end-of-turn tokens of system and user turns are not trained.
    assert len(positions) == 5


def test_the_newline_after_end_of_turn_is_not_trained(tok: Any) -> None:
    r = render(Example("f:1", CHATS["three_turns"]), tok)
    newline = tok.convert_tokens_to_ids("Ċ")
    ends = [i for i in range(r.n_tokens - 1) if r.labels[i] != IGNORE_INDEX and r.labels[i + 1] == IGNORE_INDEX]
    ends.append(r.n_tokens - 2)  # the last answer's end-of-turn, followed by the final "\n"
    for i in ends:
        assert r.input_ids[i] == tok.eos_token_id
        assert r.input_ids[i + 1] == newline and r.labels[i + 1] == IGNORE_INDEX


def test_last_assistant_trains_only_the_final_answer(tok: Any) -> None:
    messages = CHATS["three_turns"]
    r = render(Example("f:1", messages), tok, train_on="last_assistant")
    assert_labels_copy_ids(r)
    assert [decode(tok, run) for run in trained_runs(r)] == [messages[-1]["content"] + "<|im_end|>"]
    start = r.labels.index(next(lab for lab in r.labels if lab != IGNORE_INDEX))
    assert r.input_ids[:start] == chat_ids(tok, messages[:-1], add_generation_prompt=True)
    assert r.input_ids == render(Example("f:1", messages), tok).input_ids


def test_everything_trains_every_token(tok: Any) -> None:
    r = render(Example("f:1", CHATS["trailing_user"]), tok, train_on="everything")
    assert r.labels[1:] == r.input_ids[1:]
    assert r.labels[0] == IGNORE_INDEX  # nothing precedes it, so it is never predicted
    assert r.input_ids == chat_ids(tok, CHATS["trailing_user"])


def test_a_trailing_user_turn_is_context_not_trained(tok: Any) -> None:
    r = render(Example("f:1", CHATS["trailing_user"]), tok)
    assert decode(tok, r.input_ids).endswith("<|im_start|>user\nBye<|im_end|>\n")
    assert [decode(tok, run) for run in trained_runs(r)] == ["Hello!<|im_end|>"]


def test_text_rows_are_trained_whole_with_eos(tok: Any) -> None:
    r = render(Example("f:1", text="The sun rises in the east."), tok)
    assert r.input_ids == tok("The sun rises in the east.")["input_ids"] + [tok.eos_token_id]
    assert r.labels[1:] == r.input_ids[1:]


def test_render_all_matches_render_row_by_row(tok: Any) -> None:
    examples = [Example(f"f:{i}", m) for i, m in enumerate(CHATS.values())]
    examples.append(Example("f:9", text="plain text"))
    for train_on in ("all_assistant", "last_assistant", "everything"):
        rows, _, rejects = render_all(examples, tok, train_on=train_on, max_length=4096, batch_size=2)
        assert rejects == []
        assert rows == [render(e, tok, train_on=train_on, max_length=4096) for e in examples]


# --------------------------------------------------------------------------- truncation


def test_truncation_keeps_the_left_part_and_counts_what_it_dropped(tok: Any) -> None:
    example = Example("f:1", CHATS["three_turns"])
    full = render(example, tok, max_length=4096)
    cut = render(example, tok, max_length=full.n_tokens - 5)
    assert cut.truncated and not full.truncated
    assert cut.n_dropped_tokens == 5 and cut.n_tokens == full.n_tokens - 5
    assert cut.input_ids == full.input_ids[:-5] and cut.labels == full.labels[:-5]


def test_truncation_that_cuts_every_trained_token_rejects_the_row(tok: Any) -> None:
    long_prompt = (msg("user", "Explain why the sky is blue. " * 20), msg("assistant", "Air."))
    prompt_len = len(chat_ids(tok, long_prompt[:1], add_generation_prompt=True))
    examples = [Example("f:1", CHATS["single"]), Example("f:2", long_prompt)]
    max_length = prompt_len - 10
    rows, stats, rejects = render_all(examples, tok, max_length=max_length)
    assert [r.source for r in rows] == ["f:1"]
    assert [r.source for r in rejects] == ["f:2"]
    assert rejects[0].reason == (
        f"no trained tokens left after truncation to max_length={max_length} "
        f"(prompt is {prompt_len} tokens); raise data.max_length or shorten the prompt"
    )
    assert rejects[0].row == {"messages": list(long_prompt)}
    assert stats.rows == 2 and stats.rows_without_trained_tokens == 1
    assert stats.rows_truncated == 1


def test_stats_add_up(tok: Any) -> None:
    examples = [Example(f"f:{i}", m) for i, m in enumerate(CHATS.values())]
    lengths = [render(e, tok, max_length=4096).n_tokens for e in examples]
    max_length = sorted(lengths)[1]
    rows, stats, rejects = render_all(examples, tok, max_length=max_length)
    assert rejects == []
    assert stats.tokens_total == sum(r.n_tokens for r in rows)
    assert stats.tokens_trained == sum(r.n_trained for r in rows)
    assert stats.tokens_dropped == sum(max(0, n - max_length) for n in lengths)
    assert stats.rows_truncated == sum(n > max_length for n in lengths)
    assert (stats.length_min, stats.length_max) == (min(lengths), max(lengths))
    assert stats.length_mean == pytest.approx(sum(lengths) / len(lengths))
    assert stats.length_p50 == sorted(lengths)[1]


# --------------------------------------------------------------------------- templates


def with_template(tok: Any, name: str) -> Any:
    tok = copy.deepcopy(tok)
    resolve_chat_template(tok, name)
    return tok


@pytest.mark.parametrize("name", ["chatml", "mistral", "zephyr", "llama3"])
def test_named_templates_render_and_keep_the_prompt_exact(tok: Any, name: str) -> None:
    base = copy.deepcopy(tok)
    if name == "llama3":  # the tiny tokenizer lacks Llama 3's header/turn tokens; give them
        base.add_special_tokens(
            {"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
        )
    t = with_template(base, name)
    assert t.chat_template == NAMED_TEMPLATES[name]
    messages = CHATS["system_multi"]
    r = render(Example("f:1", messages), t)
    assert_labels_copy_ids(r)
    runs = [decode(t, run) for run in trained_runs(r)]
    end = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>"}.get(name, t.eos_token)
    # llama3 trims content, as Meta's template does.
    contents = [
        m["content"].strip() if name == "llama3" else m["content"] for m in messages if m["role"] == "assistant"
    ]
    assert runs == [c + end for c in contents]
    start = max(i for i in range(1, r.n_tokens) if r.labels[i] != IGNORE_INDEX and r.labels[i - 1] == IGNORE_INDEX)
    assert r.input_ids[:start] == chat_ids(t, messages[:-1], add_generation_prompt=True)


def test_a_named_template_needing_missing_tokens_is_refused(tok: Any) -> None:
    with pytest.raises(ConfigError, match="<|eot_id|>"):
        with_template(tok, "llama3")


def test_resolve_keeps_the_tokenizers_own_template(tok: Any) -> None:
    t = copy.deepcopy(tok)
    own = t.chat_template
    resolve_chat_template(t, None)
    assert t.chat_template == own


def test_resolve_reads_a_jinja_file(tok: Any, tmp_path: Path) -> None:
    path = tmp_path / "mine.jinja"
    path.write_text(NAMED_TEMPLATES["zephyr"])
    assert with_template(tok, str(path)).chat_template == NAMED_TEMPLATES["zephyr"]


@pytest.mark.parametrize("name", ["vicuna", "missing.jinja"])
def test_resolve_rejects_unknown_names_and_files(tok: Any, name: str) -> None:
    with pytest.raises(ConfigError, match="model.chat_template"):
        with_template(tok, name)


def test_a_tokenizer_without_a_template_says_what_to_set(tok: Any) -> None:
    t = copy.deepcopy(tok)
    t.chat_template = None
    with pytest.raises(ModelError, match="model.chat_template: chatml"):
        resolve_chat_template(t, None)


def test_a_template_whose_prompt_is_not_a_prefix_is_refused(tok: Any) -> None:
    t = copy.deepcopy(tok)
    # The generation prompt says "bot" but a rendered answer says "assistant".
    t.chat_template = NAMED_TEMPLATES["chatml"].replace("'<|im_start|>assistant\n'", "'<|im_start|>bot\n'")
    assert t.chat_template != NAMED_TEMPLATES["chatml"]
    with pytest.raises(DataError, match="f:1: the chat template cannot be trained turn by turn"):
        render(Example("f:1", CHATS["single"]), t)


def test_a_template_that_rewrites_earlier_turns_can_train_the_last_one(tok: Any) -> None:
    t = copy.deepcopy(tok)
    # Like reasoning templates that drop earlier answers' thoughts: earlier assistant turns
    # render differently once the conversation moves on.
    t.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
        "{{ '<|im_start|>assistant\\n(earlier)<|im_end|>\\n' }}{% else %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    example = Example("f:1", CHATS["three_turns"])
    with pytest.raises(DataError, match="data.train_on: last_assistant"):
        render(example, t)
    r = render(example, t, train_on="last_assistant")
    expected = CHATS["three_turns"][-1]["content"] + "<|im_end|>"
    assert [decode(t, run) for run in trained_runs(r)] == [expected]


# A generation prompt ending in a space: byte-level BPE merges that space with the answer's
# first word when prompt and answer are tokenized together.
SPACE_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + eos_token + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def test_the_prompt_stays_exact_where_joint_tokenization_would_merge_it(tok: Any) -> None:
    t = copy.deepcopy(tok)
    t.chat_template = SPACE_TEMPLATE
    messages = CHATS["single"]
    r = render(Example("f:1", messages), t)
    served = chat_ids(t, messages[:1], add_generation_prompt=True)
    # Tokenizing the whole text once would change the prompt's last token...
    assert chat_ids(t, messages)[: len(served)] != served
    # ...but the row keeps the served prompt exactly and trains the answer after it.
    assert r.input_ids[: len(served)] == served
    assert r.labels[len(served) - 1] == IGNORE_INDEX != r.labels[len(served)]
    assert [decode(t, run) for run in trained_runs(r)] == ["Paris.<|im_end|>"]


def test_a_turn_boundary_that_cannot_be_exact_for_every_turn_is_refused(tok: Any) -> None:
    t = copy.deepcopy(tok)
    t.chat_template = SPACE_TEMPLATE
    example = Example("f:1", CHATS["three_turns"])
    with pytest.raises(DataError, match="turn boundary tokenizes differently"):
        render(example, t)
    r = render(example, t, train_on="last_assistant")
    start = r.labels.index(next(lab for lab in r.labels if lab != IGNORE_INDEX))
    assert r.input_ids[:start] == chat_ids(t, CHATS["three_turns"][:-1], add_generation_prompt=True)


def test_invalid_options_are_config_errors(tok: Any) -> None:
    with pytest.raises(ConfigError, match="data.train_on"):
        render(Example("f:1", CHATS["single"]), tok, train_on="prompts")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="data.max_length"):
        render(Example("f:1", CHATS["single"]), tok, max_length=0)


# --------------------------------------------------------------------------- preview


def test_plain_preview_shows_the_mask_with_brackets(tok: Any) -> None:
    examples = [Example("f:1", CHATS["three_turns"]), Example("f:2", CHATS["system_multi"])]
    rows, stats, _ = render_all(examples, tok, max_length=4096)
    rows = [rows[0], render(examples[1], tok, max_length=rows[1].n_tokens - 3)]
    out = io.StringIO()
    preview(rows, tok, stats, n=2, console=Console(file=out, width=60))
    legend, text = out.getvalue().split("\n", 1)
    assert legend.startswith("legend") and OPEN in legend
    # The bracketed spans are exactly the trained runs, in order, across both rows.
    spans = [s.replace("↵\n", "\n") for s in re.findall(f"{OPEN}(.*?){CLOSE}", text, re.S)]
    assert spans == [decode(tok, run) for row in rows for run in trained_runs(row)]
    assert "<|im_start|>" in text  # special tokens are visible
    assert f"{rows[0].n_tokens} tokens, {rows[0].n_trained} trained" in text
    assert f"truncated: {rows[1].n_dropped_tokens} tokens dropped" in text
    assert "rows truncated" in text and "p95" in text


def test_colour_preview_uses_colour_not_brackets(tok: Any) -> None:
    rows, stats, _ = render_all([Example("f:1", CHATS["single"])], tok)
    out = io.StringIO()
    preview(rows, tok, stats, n=1, console=Console(file=out, force_terminal=True, color_system="truecolor", width=80))
    assert OPEN not in out.getvalue() and "\x1b[" in out.getvalue()


def test_no_color_preview_falls_back_to_brackets(tok: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    rows, stats, _ = render_all([Example("f:1", CHATS["single"])], tok)
    out = io.StringIO()
    preview(rows, tok, stats, n=1, console=Console(file=out, force_terminal=True))
    assert f"{OPEN}Paris.<|im_end|>{CLOSE}" in out.getvalue()


def test_preview_never_splits_a_character(tok: Any) -> None:
    rows, stats, _ = render_all([Example("f:1", CHATS["three_turns"])], tok)
    out = io.StringIO()
    preview(rows, tok, stats, n=1, console=Console(file=out, width=200))
    assert "Ünïcødé ✓" in out.getvalue() and "\ufffd" not in out.getvalue()


# --------------------------------------------------------------------------- integration


@pytest.fixture(scope="module")
def default_tokenizer(default_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


def _check_exact_prompts(tokenizer: Any, examples: list[Example]) -> int:
    rows, stats, rejects = render_all(examples, tokenizer, max_length=100_000)
    assert rejects == [] and stats.rows_truncated == 0
    checked = 0
    for example, r in zip(examples, rows):
        messages = list(example.messages or ())
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        starts = [i for i in range(1, r.n_tokens) if r.labels[i] != IGNORE_INDEX and r.labels[i - 1] == IGNORE_INDEX]
        assert len(starts) == len(turns), example.source
        for start, i in zip(starts, turns):
            served = tokenizer.apply_chat_template(
                messages[:i], add_generation_prompt=True, tokenize=True, return_dict=False
            )
            served_text = tokenizer.apply_chat_template(messages[:i], add_generation_prompt=True, tokenize=False)
            assert r.input_ids[:start] == list(served), example.source
            assert decode(tokenizer, r.input_ids[:start]) == served_text, example.source
            checked += 1
        answers = [m["content"] + "<|im_end|>" for m in messages if m["role"] == "assistant"]
        assert [decode(tokenizer, run) for run in trained_runs(r)] == answers, example.source
    return checked


@pytest.mark.integration
def test_default_tokenizer_prompts_are_exact_on_every_alpaca_demo_row(
    default_tokenizer: Any,
) -> None:
    examples, rejects = load_examples(ALPACA_DEMO)
    assert rejects == [] and len(examples) == 999
    # The default system prompt is in every prompt: SmolLM2's template adds it.
    first = render(examples[0], default_tokenizer)
    text = decode(default_tokenizer, first.input_ids)
    assert "You are a helpful AI assistant named SmolLM" in text
    assert _check_exact_prompts(default_tokenizer, examples) == 999


@pytest.mark.integration
def test_default_tokenizer_prompts_are_exact_on_multi_turn_chats(default_tokenizer: Any) -> None:
    rows = json.loads(ALPACA_DEMO.read_text(encoding="utf-8"))
    chats = []
    for k in range(0, 240, 3):  # chain three demo rows into one three-turn chat
        messages = [msg("system", "You are terse.")] if k % 2 else []
        for row in rows[k : k + 3]:
            question = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
            messages += [msg("user", question), msg("assistant", row["output"])]
        chats.append(Example(f"chain:{k}", tuple(messages)))
    assert _check_exact_prompts(default_tokenizer, chats) == 3 * len(chats)
