"""task: classification — {text, label} data, a head on the base model, accuracy and F1 against baselines."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from tasks_helpers import FACTS, SHARED_DATA, TINY_RUN, chat_rows, write_jsonl

from tunewise.config import load_config
from tunewise.errors import ConfigError, DataError
from tunewise.tasks.classification import LabelCollator, label_order, load_labeled

GOOD = ["good", "great", "fine", "nice", "lovely"]
BAD = ["bad", "awful", "poor", "sad", "ugly"]


def toy_rows(n: int, seed: int = 0) -> list[dict]:
    """Separable sentiment: the words alone tell the label."""
    rng = random.Random(seed)
    return [
        {"text": " ".join(rng.choice(GOOD if i % 2 else BAD) for _ in range(6)), "label": "pos" if i % 2 else "neg"}
        for i in range(n)
    ]


def config_file(tmp_path: Path, tiny_model_dir: Path, extra: str = "", data: str = "") -> Path:
    path = tmp_path / "cls.yaml"
    names = "" if "label_names" in data else ", label_names: {neg: negative, pos: positive}"
    path.write_text(
        f"task: classification\nmodel: {{name: {tiny_model_dir}}}\n"
        f"data: {{train: train.jsonl, split: {{eval: 0.25}}, max_length: 32{names}{data}}}\n"
        + TINY_RUN.replace("max_steps: 6", "max_steps: 24").replace("eval_every: 0", "eval_every: 12")
        + "eval: {bootstrap: 200, baselines: {few_shot: 2, retrieval: 0}}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n" + extra
    )
    return path


def test_label_order_is_numeric_for_numbers_else_alphabetical() -> None:
    assert label_order({"10", "2", "-1"}) == ["-1", "2", "10"]
    assert label_order({"pos", "neg", "neutral"}) == ["neg", "neutral", "pos"]


def test_rows_need_text_and_label(tmp_path: Path) -> None:
    chat = write_jsonl(tmp_path / "chat.jsonl", chat_rows(FACTS, 3))
    with pytest.raises(ConfigError, match=r"needs \{text, label\} rows.*columns messages.*data\.columns.*task: chat"):
        load_labeled(str(chat))
    renamed = write_jsonl(tmp_path / "r.jsonl", [{"review": "nice", "stars": 5}, {"review": "bad", "stars": 1}])
    rows, _ = load_labeled(str(renamed), columns={"review": "text", "stars": "label"})
    assert [(r.text, r.label) for r in rows] == [("nice", "5"), ("bad", "1")]
    bad = write_jsonl(
        tmp_path / "b.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 0.5}, {"text": "", "label": 1}]
    )
    with pytest.raises(DataError, match=r"b\.jsonl:2: `label` must be a non-empty string or a whole number"):
        load_labeled(str(bad))
    rows, rejects = load_labeled(str(bad), on_bad_rows="skip")
    assert len(rows) == 1 and [r.source.rsplit(":", 1)[1] for r in rejects] == ["2", "3"]


def test_incompatible_data_is_a_config_error_before_the_model_loads(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.run import train

    write_jsonl(tmp_path / "train.jsonl", toy_rows(40))
    write_jsonl(tmp_path / "eval.jsonl", [{"text": "meh so so", "label": "neutral"}, *toy_rows(4)])
    with pytest.raises(ConfigError) as err:
        train(
            load_config(
                config_file(tmp_path, tiny_model_dir, data=", eval: eval.jsonl, label_names: {neg: n, positive: p}")
            )
        )
    text = str(err.value)
    assert "data.eval: label 'neutral'" in text and "never occurs in the training rows" in text
    assert "data.label_names: 'positive' is not a label of the training rows" in text
    write_jsonl(tmp_path / "train.jsonl", [{"text": "x y", "label": 1}] * 10)
    with pytest.raises(ConfigError, match="a classifier needs at least two labels"):
        train(load_config(config_file(tmp_path, tiny_model_dir)))
    assert not (tmp_path / "runs").exists()


def test_language_model_suites_do_not_fit_a_classifier(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task: classification\ndata: {train: t.jsonl}\n")
    assert load_config(path).eval.suites == [], "the built-in suites score a language model: off by default"
    path.write_text("task: classification\ndata: {train: t.jsonl, shape: chat}\neval: {suites: [general_knowledge]}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "eval.suites.0" in str(err.value) and "data.shape" in str(err.value)


def test_collator_gives_one_label_per_row() -> None:
    batch = LabelCollator(pad_id=2)([{"input_ids": [5, 6, 7], "labels": [1]}, {"input_ids": [8], "labels": [0]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0]


def test_head_learns_a_separable_task_and_eval_reloads_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.run import evaluate, run

    write_jsonl(tmp_path / "train.jsonl", toy_rows(96))
    write_jsonl(tmp_path / "suite.jsonl", toy_rows(10, seed=7))
    config = config_file(tmp_path, tiny_model_dir, extra="")
    text = config.read_text().replace(
        "eval: {bootstrap: 200,", f"eval: {{suites: [{tmp_path / 'suite.jsonl'}], bootstrap: 200,"
    )
    config.write_text(text)
    run_dir = run(load_config(config), config)

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.5 * losses[0], "the classification loss should fall on a separable task"
    assert json.loads((run_dir / "labels.json").read_text()) == {
        "labels": ["neg", "pos"],
        "names": {"neg": "negative", "pos": "positive"},
    }
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    block = summary["classification"]
    assert list(block["variants"]) == ["majority", "base", "few_shot", "tuned"]
    tuned, majority = block["variants"]["tuned"], block["variants"]["majority"]
    assert tuned["accuracy"]["value"] >= 0.9 > majority["accuracy"]["value"]
    assert tuned["accuracy"]["low"] <= tuned["accuracy"]["value"] <= tuned["accuracy"]["high"]
    assert block["tuned_vs"]["majority"]["accuracy"]["low"] > 0, "the fine-tune beats the majority class"
    assert sum(map(sum, block["confusion"]["matrix"])) == block["rows"] == 24
    # As task-suite results: base = the zero-shot prompt, majority kept beside it.
    suites = {(s["name"], s["metric"]): s for s in summary["suites"]}
    assert set(suites) == {
        ("eval rows", "accuracy"),
        ("eval rows", "f1_macro"),
        ("suite", "accuracy"),
        ("suite", "f1_macro"),
    }
    assert suites[("eval rows", "accuracy")]["base"] == block["variants"]["base"]["accuracy"]
    assert "zero-shot" in suites[("eval rows", "accuracy")]["extra"]["base"]
    assert [m["metric"] for m in summary["baselines"]["suites"]][:2] == ["accuracy", "f1_macro"]
    assert "the fine-tuned head and its baselines" in (run_dir / "report.html").read_text()

    again = evaluate(run_dir)  # head and adapter from disk
    assert again["classification"]["variants"]["tuned"] == tuned


def test_a_trained_head_predicts_what_the_tuned_model_says(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The predictions scored are the argmax of the head's logits on each unpadded row."""
    from tunewise.run import Run
    from tunewise.tasks.classification import predict

    write_jsonl(tmp_path / "train.jsonl", toy_rows(40))
    trained = Run(load_config(config_file(tmp_path, tiny_model_dir), ["train.max_steps=2"]))
    trained.fit()
    trained.save()
    rows = trained.data.eval
    batched = predict(trained.model, rows, pad_id=trained.tokenizer.pad_token_id, batch_size=3)
    with torch.no_grad():
        one_by_one = [int(trained.model(input_ids=torch.tensor([r.input_ids])).logits.argmax(-1)) for r in rows]
    assert batched.tolist() == one_by_one


@pytest.mark.integration
def test_sst2_with_the_default_model_reports_accuracy_with_an_interval(tmp_path: Path, default_model_dir: Path) -> None:
    """A few steps on SST-2 (Kim 2014 split, `<label> <sentence>` lines): converted to {text, label} in tmp."""
    from tunewise.run import run

    def convert(name: str, n: int) -> Path:
        lines = (SHARED_DATA / "sst2" / name).read_text(encoding="utf-8").splitlines()[:n]
        return write_jsonl(
            tmp_path / f"{name}.jsonl",
            [{"text": t, "label": int(label)} for label, t in (line.split(" ", 1) for line in lines)],
        )

    convert("stsa.binary.train", 480)
    convert("stsa.binary.dev", 200)
    config = tmp_path / "sst2.yaml"
    config.write_text(
        "task: classification\nmodel: {name: smollm2-135m-instruct}\n"
        "data: {train: stsa.binary.train.jsonl, eval: stsa.binary.dev.jsonl, max_length: 64, "
        "label_names: {0: negative, 1: positive}}\n"
        "method: {r: 8, alpha: 16}\n"
        "train: {max_steps: 30, lr: 0.001, batch_size: 16, eval_every: 0, save_every: 100, log_every: 10, "
        "warmup_ratio: 0.1}\n"
        "eval: {batch_size: 16, bootstrap: 500, baselines: {few_shot: 0, retrieval: 0}}\n"
        f"output: {{dir: {tmp_path / 'runs'}, tracking: []}}\n"
    )
    run_dir = run(load_config(config), config)
    block = json.loads((run_dir / "eval_summary.json").read_text())["classification"]
    print(json.dumps(block["variants"], indent=1))
    tuned = block["variants"]["tuned"]["accuracy"]
    assert block["rows"] == 200 and tuned["low"] < tuned["value"] < tuned["high"]
    assert tuned["value"] > block["variants"]["majority"]["accuracy"]["value"] + 0.1


def test_a_method_that_leaves_the_head_frozen_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.methods import METHODS
    from tunewise.models import load_model
    from tunewise.tasks import check_head_trains
    from tunewise.tasks.classification import head_kwargs

    for method, refused in (
        ({"type": "freeze", "top_k": 1}, True),
        ({"type": "freeze", "top_k": 1, "train_head": True}, False),
        ({"type": "lora", "r": 2}, False),
    ):
        config = load_config(None, ["task=classification", "data.train=t.jsonl", f"method={json.dumps(method)}"])
        model = METHODS[config.method.type](load_model(str(tiny_model_dir), **head_kwargs(["a", "b"])), config.method)
        if refused:
            with pytest.raises(ConfigError, match="leaves the new classification head frozen.*train_head: true"):
                check_head_trains(config, model)
        else:
            check_head_trains(config, model)
