"""`tunewise data synth`: the Self-Instruct filter drops exactly the near duplicates and high-ROUGE-L
tasks; the job writes chat rows with provenance, accounts for every attempt, and resumes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tunewise.cli import app
from tunewise.data import load_examples
from tunewise.data.synth import Seed, TaskFilter, _parse_task, load_seeds, synthesize
from tunewise.errors import DataError, TunewiseError

BASE = "alpha bravo charlie delta echo foxtrot golf hotel india juliet"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- the filter


def test_rouge_l_threshold_is_exact() -> None:
    f = TaskFilter([("seed:1", BASE)], rouge_threshold=0.7, dedup_threshold=0.7)
    # 7 of 10 words in order (the changed words break every 3-gram, so Jaccard is 0): F1 = 0.7.
    at = "alpha xray charlie delta yankee foxtrot golf zulu india juliet"
    reason, scores = f.check(at)
    assert reason == "ROUGE-L 0.70 >= 0.7 with seed:1" and scores["rouge_l_max"] == 0.7
    below = "alpha xray charlie delta yankee foxtrot golf zulu india kilo"  # 6 of 10: F1 = 0.6
    reason, scores = f.check(below)
    assert reason is None and scores == {"rouge_l_max": 0.6, "nearest": "seed:1"}


def test_near_duplicates_are_found_through_minhash_and_verified() -> None:
    long = " ".join(f"w{i}" for i in range(40))
    f = TaskFilter([("seed:1", long)], rouge_threshold=1.0, dedup_threshold=0.8)
    one_changed = long.replace("w39", "x39")  # 37 of 39 shingles shared: Jaccard 37/39 ≈ 0.95
    reason, scores = f.check(one_changed)
    assert reason is not None and reason.startswith("near duplicate of seed:1 (Jaccard 0.95")
    assert scores["nearest"] == "seed:1"
    reason, _ = f.check(long.upper())
    assert reason == "exact duplicate of seed:1"
    far = " ".join(f"v{i}" for i in range(40))
    assert f.check(far)[0] is None


def test_length_and_undoable_tasks() -> None:
    f = TaskFilter([], min_words=3, max_words=8)
    assert f.check("Say hi")[0] == "too short: 2 words (--min-words 3)"
    assert f.check("one two three four five six seven eight nine")[0] == "too long: 9 words (--max-words 8)"
    assert f.check("Describe this image in detail")[0] == "asks for something a text model cannot do ('image')"
    assert f.check("Describe a rainy day in detail")[0] is None


def test_pool_grows_so_later_tasks_are_compared_with_accepted_ones() -> None:
    f = TaskFilter([], rouge_threshold=0.7)
    assert f.check(BASE)[0] is None
    f.add("synthetic attempt 0", BASE)
    assert f.check(BASE)[0] == "exact duplicate of synthetic attempt 0"


def test_parse_task_cuts_labels_and_following_tasks() -> None:
    assert _parse_task("Task 4: Name three birds.\nTask 5: Something else") == "Name three birds."
    assert _parse_task('"Write a limerick about tea."\n\nHere is why.') == "Write a limerick about tea."


def test_bad_thresholds() -> None:
    with pytest.raises(TunewiseError, match="--rouge-threshold 1.5"):
        TaskFilter([], rouge_threshold=1.5)


# --------------------------------------------------------------------------- the job, with a scripted generator


SEEDS = [
    Seed("seeds.jsonl:1", BASE, "x"),
    Seed("seeds.jsonl:2", "Name three rivers that flow through Europe.", "Danube, Rhine, Seine."),
    Seed("seeds.jsonl:3", "Write a short poem about autumn leaves.", "Leaves fall."),
]


class Scripted:
    """Replies to task prompts from a script indexed by attempt number; answers echo the task."""

    def __init__(self, script: dict[int, str]) -> None:
        self.script, self.next_attempt, self.task_prompts = script, 0, []

    def reseed(self, value: int) -> None:
        self.next_attempt = value  # synthesize reseeds with seed * 1_000_003 + first attempt; seed is 0

    def __call__(self, conversations: Any) -> list[str]:
        replies = []
        for c in conversations:
            prompt = c[-1]["content"]
            if prompt.startswith("You write tasks"):
                self.task_prompts.append(prompt)
                replies.append(f"Task 4: {self.script[self.next_attempt]}")
                self.next_attempt += 1
            else:
                replies.append("" if "no answer" in prompt else f"An answer to: {prompt}")
        return replies


SCRIPT = {
    0: "Explain how a bicycle gear system works.",
    1: "Name three rivers that flow through Europe.",  # exact duplicate of a seed
    2: "alpha xray charlie delta yankee foxtrot golf zulu india juliet",  # ROUGE-L 0.7 with seed 1
    3: "Describe the picture on this page.",  # undoable
    4: "Explain how a bicycle gear system works!",  # duplicate of attempt 0
    5: "List four ways to save water at home.",
    6: "Hi",  # too short
    7: "Give no answer to this question please.",  # empty answer
    8: "Suggest a weekend project for learning basic electronics.",
    9: "Compare the climates of Norway and Egypt.",
}


def test_synth_keeps_exactly_the_tasks_that_pass(tmp_path: Path) -> None:
    out = tmp_path / "synth.jsonl"
    gen = Scripted(SCRIPT)
    result = synthesize(out, gen, seeds=SEEDS, count=4, batch_size=3, model_name="scripted")
    rows = read_jsonl(out)
    assert [r["messages"][0]["content"] for r in rows] == [SCRIPT[0], SCRIPT[5], SCRIPT[8], SCRIPT[9]]
    assert result.accepted == 4 and result.attempts == 10 and result.stopped == "count reached"
    rejects = read_jsonl(result.rejects)
    reasons = {r["attempt"]: r["reason"] for r in rejects}
    assert reasons[1] == "exact duplicate of seeds.jsonl:2"
    assert reasons[2] == "ROUGE-L 0.70 >= 0.7 with seeds.jsonl:1"
    assert reasons[3].startswith("asks for something a text model cannot do")
    assert reasons[4] == "near duplicate of synthetic attempt 0 (Jaccard 1.00 >= 0.7)"  # only "!" differs
    assert reasons[6].startswith("too short") and reasons[7] == "the model gave no answer"
    assert len(rows) + len(rejects) == result.attempts  # every attempt accounted for
    for r in rows:
        assert r["messages"][1] == {"role": "assistant", "content": f"An answer to: {r['messages'][0]['content']}"}
        p = r["provenance"]
        assert p["op"] == "self_instruct" and p["model"] == "scripted" and len(p["shots"]) == 3
        assert 0 <= p["rouge_l_max"] < 0.7
    examples, bad = load_examples(out)  # chat format, ready for data.train
    assert len(examples) == 4 and not bad


def test_prompts_mix_seed_and_synthetic_shots(tmp_path: Path) -> None:
    gen = Scripted(SCRIPT)
    synthesize(tmp_path / "s.jsonl", gen, seeds=SEEDS, count=4, batch_size=1, shots=3, machine_shots=1)
    later = gen.task_prompts[-1]
    assert "Task 1:" in later and "Task 3:" in later and "Task 4:" not in later
    assert sum(task in later for task in (SCRIPT[0], SCRIPT[5], SCRIPT[8])) == 1


def test_synth_resumes_to_the_same_result(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    synthesize(whole, Scripted(SCRIPT), seeds=SEEDS, count=4, batch_size=2)
    parts = tmp_path / "parts.jsonl"
    first = synthesize(parts, Scripted(SCRIPT), seeds=SEEDS, count=2, batch_size=2)
    assert first.accepted == 2
    with open(parts, "a", encoding="utf-8") as f:  # a job killed mid-write leaves a torn line
        f.write('{"messages": [{"role": "us')
    second = synthesize(parts, Scripted(SCRIPT), seeds=SEEDS, count=4, batch_size=2)
    assert second.resumed_from == first.attempts and second.new_accepted == 2
    assert parts.read_text(encoding="utf-8") == whole.read_text(encoding="utf-8")
    assert [r["attempt"] for r in read_jsonl(second.rejects)] == [
        r["attempt"] for r in read_jsonl(tmp_path / "whole.rejects.jsonl")
    ]
    third = synthesize(parts, Scripted(SCRIPT), seeds=SEEDS, count=4)
    assert third.new_accepted == 0 and third.attempts == second.attempts  # nothing left to do


def test_max_attempts_stops_a_job_that_cannot_finish(tmp_path: Path) -> None:
    result = synthesize(
        tmp_path / "s.jsonl", Scripted(dict.fromkeys(range(20), "Hi")), seeds=SEEDS, count=3, max_attempts=5
    )
    assert result.accepted == 0 and result.attempts == 5 and result.stopped == "max attempts reached"
    assert result.new_rejected == {"too short": 5}


def test_foreign_output_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mine.jsonl"
    out.write_text('{"messages": []}\n', encoding="utf-8")
    with pytest.raises(DataError, match="not written by `tunewise data synth`"):
        synthesize(out, Scripted(SCRIPT), seeds=SEEDS, count=1)


# --------------------------------------------------------------------------- seeds, real tiny model, CLI


def test_default_seeds_and_bad_seed_files(tmp_path: Path) -> None:
    seeds = load_seeds()
    assert len(seeds) == 24 and all(s.instruction and s.answer for s in seeds)
    assert re.search(r"synth_seeds.jsonl:\d+$", seeds[0].source)
    bad = tmp_path / "seeds.jsonl"
    bad.write_text('{"instruction": "Say hi", "output": "Hi"}\n{"instruction": "", "output": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"seeds.jsonl:2: `instruction` is empty"):
        load_seeds(bad)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"instruction": "caf\xe9", "output": "x"}\n')
    with pytest.raises(DataError, match=r"latin.jsonl:1: not UTF-8"):
        load_seeds(latin)


def test_synth_on_a_real_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunewise.data import ModelGenerator

    out = tmp_path / "tiny.jsonl"
    gen = ModelGenerator(name=str(tiny_model_dir), max_new_tokens=16, seed=0, batch_size=2)
    result = synthesize(out, gen, seeds=load_seeds(), count=2, batch_size=2, max_attempts=4, min_words=1)
    rows, rejects = read_jsonl(out) if out.exists() else [], read_jsonl(result.rejects)
    assert len(rows) + len(rejects) == result.attempts > 0
    assert all(r["messages"][0]["role"] == "user" and r["provenance"]["attempt"] >= 0 for r in rows)


def test_cli_synth_reports_bad_seeds(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"text": "plain"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "o.jsonl"), "--seeds", str(seeds)])
    assert result.exit_code != 0
    assert "not plain text" in str(result.exception)


@pytest.mark.integration
def test_synth_on_the_default_model(default_model_dir: Path, tmp_path: Path) -> None:
    from tunewise.data import ModelGenerator

    gen = ModelGenerator(name=str(default_model_dir), max_new_tokens=24, seed=0, batch_size=2)
    result = synthesize(tmp_path / "s.jsonl", gen, count=2, batch_size=2, max_attempts=2)
    rows = read_jsonl(result.out) if result.out.exists() else []
    assert len(rows) + len(read_jsonl(result.rejects)) == result.attempts == 2
    for r in rows:  # an instruct model writes real tasks: words, not noise
        assert len(r["messages"][0]["content"].split()) >= 3 and r["messages"][1]["content"]
