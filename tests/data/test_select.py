"""`tunewise data select`: k-center greedy spreads over constructed clusters; entropy and perplexity
rank constructed distributions as they should; the whole path runs on a real tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tunewise.cli import app
from tunewise.data.io import read_rows
from tunewise.data.select import (
    k_center_greedy,
    mean_token_entropy,
    select_file,
    select_rows,
    sequence_perplexity,
)
from tunewise.errors import DataError, TunewiseError
from tunewise.testing import tiny_model, tiny_tokenizer


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- k-center greedy


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points = np.concatenate([c + rng.normal(scale=0.1, size=(25, 2)) for c in centers])
    return points, np.repeat(np.arange(4), 25)


def test_k_center_picks_one_point_per_cluster() -> None:
    points, label = clusters()
    picked, distances = k_center_greedy(points, 4)
    assert sorted(label[picked]) == [0, 1, 2, 3]
    assert all(d > 5 for d in distances[1:])  # every pick is far from the ones before
    more, more_d = k_center_greedy(points, 6)
    assert more[:4] == picked and all(d < 1 for d in more_d[4:])  # then inside clusters


def test_k_center_starts_from_labelled_points() -> None:
    points, label = clusters()
    labelled = points[[0, 1, 25]]  # clusters 0 and 1 already labelled
    picked, _ = k_center_greedy(points, 2, initial=labelled)
    assert sorted(label[picked]) == [2, 3]


def test_k_center_is_deterministic_and_checks_k() -> None:
    points = np.zeros((5, 3))  # all ties: the lowest index wins each time
    assert k_center_greedy(points, 3)[0] == [0, 1, 2]
    with pytest.raises(TunewiseError, match="--k 6"):
        k_center_greedy(points, 6)


# --------------------------------------------------------------------------- uncertainty on constructed distributions


def test_mean_token_entropy_on_constructed_distributions() -> None:
    vocab = 8
    uniform = torch.zeros(1, 3, vocab)
    peaked = torch.full((1, 3, vocab), -1e4)
    peaked[..., 0] = 0
    half = torch.full((1, 3, vocab), -1e4)
    half[..., :2] = 0  # two equally likely tokens: log 2
    logits = torch.cat([uniform, peaked, half])
    mask = torch.ones(3, 3)
    got = mean_token_entropy(logits, mask)
    assert torch.allclose(got, torch.tensor([math.log(vocab), 0.0, math.log(2)]), atol=1e-5)
    # Masked positions do not count: a uniform position hidden behind the mask changes nothing.
    mixed = torch.cat([peaked[:, :2], uniform[:, :1]], dim=1)
    assert mean_token_entropy(mixed, torch.tensor([[1, 1, 0]])).item() == pytest.approx(0.0, abs=1e-5)
    assert mean_token_entropy(mixed, torch.tensor([[1, 1, 1]])).item() == pytest.approx(math.log(vocab) / 3, rel=1e-5)


def test_sequence_perplexity_is_one_over_the_token_probability() -> None:
    vocab = 4
    ids = torch.tensor([[0, 1, 2, 3]])
    logits = torch.zeros(1, 4, vocab)  # uniform: every next token has p = 1/4
    assert sequence_perplexity(logits, ids, torch.ones(1, 4)).item() == pytest.approx(4.0, rel=1e-5)
    sure = torch.full((1, 4, vocab), -1e4)
    for t in range(3):
        sure[0, t, ids[0, t + 1]] = 0
    assert sequence_perplexity(sure, ids, torch.ones(1, 4)).item() == pytest.approx(1.0, rel=1e-5)
    # Padding after the text does not count.
    padded = torch.cat([sure, torch.zeros(1, 2, vocab)], dim=1)
    assert sequence_perplexity(
        padded, torch.tensor([[0, 1, 2, 3, 2, 2]]), torch.tensor([[1, 1, 1, 1, 0, 0]])
    ).item() == pytest.approx(1.0, rel=1e-5)


class ConfusedLM(torch.nn.Module):
    """Next-token logits that are uniform after `confusing` token ids and sure elsewhere."""

    def __init__(self, vocab: int, confusing: set[int]) -> None:
        super().__init__()
        self.vocab, self.confusing = vocab, confusing
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> SimpleNamespace:
        logits = torch.full((*input_ids.shape, self.vocab), -1e4)
        logits[..., 0] = 0
        for token in self.confusing:
            logits[input_ids == token] = 0
        return SimpleNamespace(logits=logits)


def test_entropy_selection_ranks_rows_by_constructed_uncertainty(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    confusing = {tok.convert_tokens_to_ids(t) for t in tok.tokenize(" zebra")}
    rows = [
        {"text": "the sun rises"},
        {"text": "zebra zebra zebra zebra"},
        {"text": "the zebra sun"},
        {"text": "water boils"},
    ]
    path = write_jsonl(tmp_path / "pool.jsonl", rows)
    chosen = select_rows(list(read_rows(path)), 2, ConfusedLM(len(tok), confusing), tok, by="entropy")
    assert [c.index for c in chosen] == [1, 2]
    assert chosen[0].score > chosen[1].score > 0
    assert chosen[0].source.endswith("pool.jsonl:2") and chosen[0].rank == 1


# --------------------------------------------------------------------------- real tiny model, files, CLI


POOL = [
    {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok"}]}
    for q in (
        "What is the capital of France?",
        "Explain why the sky is blue.",
        "Write a poem about the sea.",
        "List three colors.",
        "Translate good morning into French.",
        "12 * 3 = ?",
        "Summarize the text.",
        "Classify the sentiment of this review: I loved this movie.",
    )
]


@pytest.mark.parametrize("by", ["entropy", "perplexity", "kcenter"])
def test_select_file_on_a_real_tiny_model(tmp_path: Path, by: str) -> None:
    pool = write_jsonl(tmp_path / "pool.jsonl", POOL)
    out = tmp_path / "chosen.jsonl"
    chosen = select_file(pool, out, 3, tiny_model(seed=1), tiny_tokenizer(), by=by, model_name="tiny", batch_size=3)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["selection"]["rank"] for r in rows] == [1, 2, 3]
    assert len({r["selection"]["source"] for r in rows}) == 3
    assert all(r["messages"] == POOL[c.index]["messages"] for r, c in zip(rows, chosen))
    scores = [r["selection"]["score"] for r in rows]
    if by == "kcenter":
        assert scores[1] >= scores[2] > 0  # farthest-first: distances never grow after the first pick
    else:
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
        # The same scores as scoring each row alone: padding in a batch changes nothing.
        alone = select_rows([next(iter(read_rows(pool)))], 1, tiny_model(seed=1), tiny_tokenizer(), by=by)[0].score
        every = select_rows(list(read_rows(pool)), len(POOL), tiny_model(seed=1), tiny_tokenizer(), by=by, batch_size=4)
        assert next(c.score for c in every if c.index == 0) == pytest.approx(alone, rel=1e-4)


def test_kcenter_with_labelled_rows_skips_them(tmp_path: Path) -> None:
    pool = write_jsonl(tmp_path / "pool.jsonl", POOL)
    labelled = write_jsonl(tmp_path / "labelled.jsonl", POOL[:1])
    chosen = select_file(pool, tmp_path / "o.jsonl", 2, tiny_model(), tiny_tokenizer(), by="kcenter", labelled=labelled)
    assert 0 not in [c.index for c in chosen]  # an already labelled row is at distance 0


def test_select_bad_input(tmp_path: Path) -> None:
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"text": "a"}, {"prompt": "b", "completion": "c"}])
    with pytest.raises(DataError, match=r"mixed.jsonl:2: mixed schemas"):
        select_file(mixed, tmp_path / "o.jsonl", 1, tiny_model(), tiny_tokenizer())
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": "a"}])
    with pytest.raises(TunewiseError, match="--k 2: must be between 1 and the number of rows"):
        select_file(pool, tmp_path / "o.jsonl", 2, tiny_model(), tiny_tokenizer())
    with pytest.raises(TunewiseError, match="--by margin"):
        select_file(pool, tmp_path / "o.jsonl", 1, tiny_model(), tiny_tokenizer(), by="margin")


def test_cli_select(tmp_path: Path, tiny_model_dir: Path) -> None:
    pool = write_jsonl(tmp_path / "pool.jsonl", POOL)
    out = tmp_path / "chosen.csv"
    result = CliRunner().invoke(
        app,
        [
            "data",
            "select",
            str(pool),
            "-k",
            "2",
            "--out",
            str(out),
            "--by",
            "perplexity",
            "--model",
            str(tiny_model_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 rows chosen by perplexity" in result.output
    rows = list(read_rows(out))
    assert [json.loads(r.data["selection"])["rank"] for r in rows] == [1, 2]


@pytest.mark.integration
def test_select_on_the_default_model_and_real_data(default_model_dir: Path, tmp_path: Path) -> None:
    from tunewise.models import load_model, load_tokenizer

    demo = Path(__file__).resolve().parents[3] / "shared" / "data" / "llamafactory_demo" / "alpaca_en_demo.json"
    rows = list(read_rows(demo))[:12]
    model, tok = load_model(str(default_model_dir)), load_tokenizer(str(default_model_dir))
    by_entropy = select_rows(rows, 3, model, tok, by="entropy", max_length=64)
    by_ppl = select_rows(rows, 3, model, tok, by="perplexity", max_length=64)
    spread = select_rows(rows, 3, model, tok, by="kcenter", max_length=64)
    for chosen in (by_entropy, by_ppl, spread):
        assert len({c.index for c in chosen}) == 3 and all(c.source.startswith(str(demo)) for c in chosen)
    assert 0 < by_entropy[-1].score <= by_entropy[0].score < 11  # nats; log(vocab 49152) = 10.8
    assert by_ppl[0].score > 1


def test_a_row_with_nothing_to_score_is_named(tmp_path: Path) -> None:
    pool = write_jsonl(tmp_path / "pool.jsonl", [{"text": "a"}, {"text": "  "}])
    with pytest.raises(DataError, match=r"pool.jsonl:2: nothing to score"):
        select_file(pool, tmp_path / "o.jsonl", 1, tiny_model(), tiny_tokenizer())
