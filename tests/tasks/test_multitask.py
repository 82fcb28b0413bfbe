"""Multi-task: mixture probabilities, the seeded sampler, and per-dataset evaluation."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from tasks_helpers import CAPITALS, FACTS, TINY_RUN, chat_rows, write_jsonl

from tunewise.config import MixingConfig, load_config
from tunewise.errors import ConfigError
from tunewise.tasks.multitask import mixture_probabilities, sample_mixture


def test_temperature_one_is_proportional_and_large_temperatures_flatten() -> None:
    sizes = [100, 900]
    assert mixture_probabilities(sizes, MixingConfig(temperature=1)) == pytest.approx([0.1, 0.9])
    # T5/mT5: p_i ∝ n_i^(1/T)
    two = mixture_probabilities(sizes, MixingConfig(temperature=2))
    assert two == pytest.approx([10 / 40, 30 / 40])
    assert mixture_probabilities(sizes, MixingConfig(temperature=1e6)) == pytest.approx([0.5, 0.5], abs=1e-5)
    assert sum(mixture_probabilities([3, 5, 7], MixingConfig(temperature=3))) == pytest.approx(1.0)


def test_weights_are_normalised_and_ignore_sizes() -> None:
    probs = mixture_probabilities([10, 10_000], MixingConfig(strategy="weights"), [3.0, 1.0])
    assert probs == pytest.approx([0.75, 0.25])


@pytest.mark.parametrize(("sizes", "probs"), [([50, 500, 5000], [0.5, 0.3, 0.2]), ([7, 7], [0.9, 0.1])])
def test_sampled_proportions_match_the_configured_ones(sizes: list[int], probs: list[float]) -> None:
    total = 20_000
    drawn = sample_mixture(sizes, probs, total, seed=1)
    counts = Counter(d for d, _ in drawn)
    for d, p in enumerate(probs):
        assert counts[d] / total == pytest.approx(p, abs=0.002)
    # Small totals too: never a dataset left out by chance.
    small = Counter(d for d, _ in sample_mixture([12, 12], [0.25, 0.75], 24, seed=0))
    assert small == {0: 6, 1: 18}


def test_sampling_is_seeded_and_exhausts_a_dataset_before_repeating_a_row() -> None:
    a = sample_mixture([5, 40], [0.6, 0.4], 60, seed=3)
    assert a == sample_mixture([5, 40], [0.6, 0.4], 60, seed=3)
    assert a != sample_mixture([5, 40], [0.6, 0.4], 60, seed=4)
    small = [i for d, i in a if d == 0]  # 36 draws from 5 rows: seven full passes, then one more
    for start in range(0, len(small) - 5, 5):
        assert sorted(small[start : start + 5]) == list(range(5))
    big = [i for d, i in a if d == 1]  # 24 of 40: no repeats
    assert len(set(big)) == len(big)


def test_mixture_config_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "data:\n  train: x.jsonl\n  mixing: {strategy: weights}\n"
        "  datasets: [{name: a, train: a.jsonl, weight: 2}, {name: a, train: b.jsonl}]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "either data.train (one dataset) or data.datasets" in text
    assert "names must be unique; a repeated" in text
    assert "needs a weight on every dataset; a has none" in text
    path.write_text("data:\n  datasets: [{name: a, train: a.jsonl, weight: 2}, {name: b, train: b.jsonl}]\n")
    with pytest.raises(ConfigError, match="only mixing.strategy: weights uses"):
        load_config(path)


def test_a_mixture_run_reports_every_dataset_base_vs_tuned(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.evaluation.compare import loss_on
    from tunewise.run import load_tokenizer_for, prepare_data, run

    write_jsonl(tmp_path / "facts.jsonl", chat_rows(FACTS, 12))
    write_jsonl(tmp_path / "capitals.jsonl", chat_rows(CAPITALS, 24))
    write_jsonl(tmp_path / "capitals_eval.jsonl", chat_rows(CAPITALS, 3))
    config_file = tmp_path / "mix.yaml"
    config_file.write_text(
        f"model: {{name: {tiny_model_dir}}}\n"
        "data:\n  datasets: [{name: facts, train: facts.jsonl}, "
        "{name: capitals, train: capitals.jsonl, eval: capitals_eval.jsonl}]\n"
        "  mixing: {temperature: 2.0}\n  split: {eval: 0.25}\n  max_length: 128\n"
        + TINY_RUN
        + "eval: {suites: [], generations: 0, bootstrap: 200, baselines: {few_shot: 0, retrieval: 0}}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    config = load_config(config_file)
    run_dir = run(config, config_file)

    mixture = json.loads((run_dir / "mixture.json").read_text())
    assert [m["name"] for m in mixture] == ["facts", "capitals"]
    assert [m["train_rows"] for m in mixture] == [9, 24]
    expected = [math.sqrt(9) / (math.sqrt(9) + math.sqrt(24)), math.sqrt(24) / (math.sqrt(9) + math.sqrt(24))]
    assert [m["probability"] for m in mixture] == pytest.approx(expected)
    assert sum(m["drawn"] for m in mixture) == 33

    summary = json.loads((run_dir / "eval_summary.json").read_text())
    per = {d["name"]: d for d in summary["datasets"]}
    assert per["facts"]["rows"] == 3 and per["capitals"]["rows"] == 3
    # Each dataset's numbers equal a direct evaluation of its own eval rows.
    from peft import PeftModel

    from tunewise.models import load_model

    tokenizer = load_tokenizer_for(config)
    data = prepare_data(config, tokenizer)
    tuned = PeftModel.from_pretrained(load_model(str(tiny_model_dir)), run_dir / "adapter")
    assert data.eval_parts == {"facts": 3, "capitals": 3}
    for name, (start, stop) in {"facts": (0, 3), "capitals": (3, 6)}.items():
        direct = loss_on(tuned, data.eval[start:stop], pad_id=tokenizer.pad_token_id, batch_size=4).loss
        assert per[name]["tuned"]["loss"] == pytest.approx(direct, rel=1e-5)
        assert per[name]["delta"]["low"] <= per[name]["delta_loss"] <= per[name]["delta"]["high"]
    assert "Per dataset of the mixture" in (run_dir / "report.html").read_text()
