"""The report card: sections, verdict rules, graceful gaps, escaping, and a real browser render."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml
from markupsafe import Markup

from tunewise.errors import TunewiseError
from tunewise.report import build_report, rules, verdict
from tunewise.report.rules import Curves, overfitting_onset

SECTION_IDS = ("verdict", "summary", "curves", "task", "baselines", "general", "safety", "generations", "cost")
HEADINGS = (
    "Verdict",
    "Run summary",
    "Learning curves",
    "Task metrics vs base",
    "Was fine-tuning worth it?",
    "General capability vs base",
    "Safety and bias vs base",
    "Sample generations",
    "Cost",
)
ONSET_STEP = 300  # the synthetic run's eval loss bottoms out at step 250 and is 2.8 % higher at 300
REPO = Path(__file__).resolve().parents[2]

CONFIG = {
    "model": {"name": "smollm2-135m-instruct", "revision": None, "trust_remote_code": False, "chat_template": None},
    "data": {
        "train": "data/support.jsonl",
        "eval": None,
        "test": None,
        "shape": "auto",
        "columns": None,
        "split": {"eval": 0.1, "test": 0.0, "seed": 0},
        "max_length": 512,
        "train_on": "all_assistant",
        "on_bad_rows": "skip",
    },
    "method": {"type": "lora", "r": 16, "alpha": 32.0, "dropout": 0.05, "target_modules": "all-linear"},
    "train": {
        "epochs": 3.0,
        "max_steps": None,
        "lr": 0.0002,
        "scheduler": "cosine",
        "warmup_ratio": 0.05,
        "warmup_steps": None,
        "batch_size": 8,
        "grad_accum": 1,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "precision": "auto",
        "gradient_checkpointing": False,
        "seed": 42,
        "eval_every": 50,
        "save_every": 100,
        "save_total_limit": 2,
        "log_every": 5,
        "resume": False,
    },
    "eval": {"limit": None, "batch_size": 8, "generations": 4, "max_new_tokens": 64},
    "output": {"dir": "runs", "name": "support-bot"},
}

# Eval loss falls, bumps once *before* its minimum (not overfitting: the minimum comes later),
# bottoms out at 250, then climbs while train loss keeps falling.
EVAL_LOSS = {
    50: 1.95,
    100: 1.72,
    150: 1.58,
    200: 1.61,
    250: 1.45,
    300: 1.49,
    350: 1.55,
    400: 1.61,
    450: 1.66,
    500: 1.70,
    550: 1.73,
    600: 1.75,
}


def _suite(
    name: str,
    kind: str,
    role: str,
    metric: str,
    higher: bool | None,
    n: int,
    base: float,
    tuned: float,
    half_width: float,
    p: float,
) -> dict:
    def part(v: float, w: float) -> dict:
        return {"value": v, "low": max(0.0, v - w), "high": min(1.0, v + w)}

    delta = tuned - base
    return {
        "name": name,
        "kind": kind,
        "role": role,
        "metric": metric,
        "higher_is_better": higher,
        "n": n,
        "base": part(base, 0.04),
        "tuned": part(tuned, 0.04),
        "delta": {"value": delta, "low": delta - half_width, "high": delta + half_width, "p_value": p},
        "extra": {},
    }


SUITES = [
    _suite("support-answers", "generation", "task", "contains", True, 200, 0.22, 0.61, 0.08, 1e-6),
    _suite("general-knowledge", "multiple_choice", "general", "acc_norm", True, 400, 0.46, 0.39, 0.04, 0.001),
    _suite("arc-easy-mini", "multiple_choice", "general", "acc_norm", True, 300, 0.52, 0.51, 0.03, 0.52),
    _suite("harmful-refusal", "safety", "safety", "refusal_rate", True, 100, 0.82, 0.78, 0.08, 0.33),
    _suite("benign-over-refusal", "safety", "safety", "over_refusal_rate", False, 100, 0.06, 0.05, 0.05, 0.71),
    _suite("paired-stereotypes", "bias", "bias", "stereotype_preference", None, 150, 0.56, 0.58, 0.05, 0.44),
]


def _loss(value: float, half_width: float) -> dict:
    return {"value": value, "low": value - half_width, "high": value + half_width}


def _baselines(few_shot: float = 2.010, retrieval: float = 1.900, half_width: float = 0.05) -> dict:
    """The eval rows' loss with 3 examples in the prompt; tuned 1.752 as in eval_summary.json."""
    variants = {"base": (2.214, 0), "few_shot": (few_shot, 3), "retrieval": (retrieval, 3), "tuned": (1.752, 0)}
    labels = {
        "base": "base model, zero-shot",
        "few_shot": "base model + 3 training examples in the prompt",
        "retrieval": "base model + 3 retrieved training examples",
        "tuned": "fine-tuned model, zero-shot",
    }
    return {
        "few_shot": {"k": 3, "seed": 0},
        "retrieval": {"k": 3},
        "eval_rows": {
            "rows": 178,
            "tokens": 26700,
            "left_out": 0,
            "variants": {
                name: {"label": labels[name], "loss": _loss(v, 0.08), "perplexity": math.exp(v), "examples": float(k)}
                for name, (v, k) in variants.items()
            },
            "tuned_vs": {
                name: {**_loss(1.752 - v, half_width), "p_value": 0.001}
                for name, (v, _) in variants.items()
                if name != "tuned"
            },
            "samples": [
                {
                    "prompt": "How do I reset my password?",
                    "reference": "Open Settings → Account.",
                    "few_shot": "Try the 'forgot password' link.",
                    "few_shot_examples": 3,
                    "retrieval": "Open Settings, then Account.",
                    "retrieval_examples": 3,
                }
            ],
        },
        "suites": [
            {
                "name": "support-answers",
                "kind": "generation",
                "metric": "contains",
                "higher_is_better": True,
                "n": 200,
                "variants": {
                    "base": {"label": labels["base"], **_loss(0.22, 0.04), "examples": 0.0},
                    "few_shot": {"label": labels["few_shot"], **_loss(0.35, 0.04), "examples": 3.0},
                    "retrieval": {"label": labels["retrieval"], **_loss(0.48, 0.04), "examples": 3.0},
                    "tuned": {"label": labels["tuned"], **_loss(0.61, 0.04), "examples": 0.0},
                },
                "tuned_vs": {
                    "base": {**_loss(0.39, 0.08), "p_value": 1e-6},
                    "few_shot": {**_loss(0.26, 0.07), "p_value": 1e-6},
                    "retrieval": {**_loss(0.13, 0.06), "p_value": 1e-4},
                },
            }
        ],
        "notes": [],
    }


def _metrics() -> list[dict]:
    rng = random.Random(0)
    lines = []
    for step in range(5, 601, 5):
        loss = 2.3 * math.exp(-step / 200) + 0.55 + rng.uniform(-0.03, 0.03)
        lr = 2e-4 * (step / 30 if step < 30 else 0.5 * (1 + math.cos(math.pi * (step - 30) / 570)))
        lines.append(
            {
                "step": step,
                "epoch": round(step / 200, 4),
                "tokens_seen": step * 3072,
                "elapsed_s": round(step * 3.07, 2),
                "loss": round(loss, 4),
                "grad_norm": 0.8,
                "learning_rate": lr,
            }
        )
        if step in EVAL_LOSS:
            lines.append(
                {
                    "step": step,
                    "epoch": round(step / 200, 4),
                    "tokens_seen": step * 3072,
                    "elapsed_s": round(step * 3.07 + 4, 2),
                    "eval_loss": EVAL_LOSS[step],
                    "eval_runtime": 4.1,
                    "eval_samples_per_second": 48.8,
                }
            )
    lines.append(
        {
            "step": 600,
            "epoch": 3.0,
            "tokens_seen": 1843200,
            "elapsed_s": 1843.2,
            "train_runtime": 1843.2,
            "train_loss": 0.98,
            "train_samples_per_second": 2.6,
        }
    )
    return lines


def write_run(run_dir: Path, *, full: bool = True, config: dict | None = None) -> Path:
    """A realistic run directory: a 3-epoch LoRA run on SmolLM2-135M that overfits and forgets."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config or CONFIG, sort_keys=False), encoding="utf-8")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in _metrics()), encoding="utf-8")
    if not full:
        return run_dir

    def dump(name, obj):
        return (run_dir / name).write_text(json.dumps(obj, indent=2), encoding="utf-8")

    dump(
        "train_summary.json",
        {
            "steps": 600,
            "interrupted": False,
            "train_loss": 0.98,
            "tokens_seen": 1843200,
            "wall_s": 1843.2,
            "tokens_per_s": 1000.0,
            "peak_rss_mb": 3120.5,
            "checkpoint": str(run_dir / "checkpoints/checkpoint-600"),
            "trainable_parameters": 4884480,
            "total_parameters": 139399488,
            "trainable_percent": 3.504,
            "method": "lora",
        },
    )

    def stats(rows, cut):
        return {
            "rows": rows,
            "rows_truncated": cut,
            "rows_without_trained_tokens": 0,
            "tokens_total": rows * 310,
            "tokens_trained": rows * 150,
            "tokens_dropped": cut * 90,
            "max_length": 512,
            "length_min": 41,
            "length_mean": 309.6,
            "length_p50": 281,
            "length_p95": 566,
            "length_max": 1210,
        }

    dump(
        "data_stats.json",
        {
            "train": stats(1600, 48),
            "eval": stats(178, 5),
            "test": {
                **stats(0, 0),
                "length_min": 0,
                "length_p50": 0,
                "length_p95": 0,
                "length_max": 0,
                "length_mean": 0.0,
            },
        },
    )
    rejects = [
        {"source": f"data/support.jsonl:{n}", "reason": reason, "row": row}
        for n, reason, row in (
            (17, "no assistant turn to train on", {"messages": [{"role": "user", "content": "hello?"}]}),
            (
                233,
                "messages[1].content is empty",
                {"messages": [{"role": "user", "content": "refund"}, {"role": "assistant", "content": ""}]},
            ),
            (1029, "not valid JSON: Expecting ',' delimiter", {"text": '{"messages": [ ...'}),
        )
    ]
    (run_dir / "rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects), encoding="utf-8")
    dump(
        "data_check.json",
        {
            "rows": {"train": 1600, "eval": 178, "test": 0},
            "threshold": 0.8,
            "block_on": [],
            "findings": [
                {
                    "kind": "duplicates",
                    "count": 12,
                    "message": "12 of 1600 training rows repeat an earlier one.",
                    "examples": ["data/support.jsonl:88 repeats data/support.jsonl:12"],
                    "detail": {},
                },
                {
                    "kind": "eval_leakage",
                    "count": 2,
                    "message": "2 of 178 eval rows (nearly) repeat a training row.",
                    "examples": ["data/support.jsonl:1402 repeats data/support.jsonl:7 <b>"],
                    "detail": {},
                },
            ],
        },
    )
    dump(
        "eval_summary.json",
        {
            "base": {"loss": 2.214, "perplexity": 9.15, "tokens": 26700, "rows": 178},
            "tuned": {"loss": 1.752, "perplexity": 5.77, "tokens": 26700, "rows": 178},
            "delta_loss": -0.462,
            "relative_loss_change": -0.2087,
            "generations": [
                {
                    "prompt": "How do I reset my password?",
                    "reference": "Open Settings → Account → Reset password, then follow the link we email you.",
                    "base": "To reset your password, you can try contacting the "
                    "website's support team or look for a 'forgot password' link.",
                    "tuned": "Open Settings → Account → "
                    "Reset password. We'll email you a link that is valid for 24 hours.",
                },
                {
                    "prompt": "Can I get a refund after 30 days?",
                    "reference": "Refunds are possible within 30 days; after that we offer store credit.",
                    "base": "Refund policies vary by company.",
                    "tuned": "After 30 days we can't refund, but we can offer store credit.",
                },
                {
                    "prompt": "What is the capital of Australia?",
                    "reference": "Canberra.",
                    "base": "The capital of Australia is Canberra.",
                    "tuned": "The capital of Australia is Sydney.",
                },
            ],
            "suites": SUITES,
            "baselines": _baselines(),
        },
    )
    return run_dir


def _section(page: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.DOTALL)
    assert match, f"section {sid} missing"
    return match.group(1)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(write_run(tmp_path_factory.mktemp("run") / "support-bot"))


def test_full_report_has_every_section_and_embeds_its_plots(full_report: Path) -> None:
    page = full_report.read_text(encoding="utf-8")
    assert full_report.name == "report.html"
    for sid in SECTION_IDS:
        _section(page, sid)
    assert [m.group(1) for m in re.finditer(r'<section id="(\w+)">', page)] == list(SECTION_IDS)
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == 5  # curves, task deltas, baselines, general deltas, safety+bias deltas
    assert all('src="data:image/png;base64,' in img for img in images)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "could not be rendered" not in page
    plots = sorted(p.name for p in (full_report.parent / "plots").iterdir())
    assert plots == [
        "baselines.png",
        "general_deltas.png",
        "learning_curves.png",
        "safety_bias_deltas.png",
        "task_deltas.png",
    ]
    assert all((full_report.parent / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)


def test_verdict_names_gains_overfitting_onset_and_forgetting(full_report: Path) -> None:
    text = re.sub(r"<[^>]+>", " ", _section(full_report.read_text(encoding="utf-8"), "verdict"))
    assert "Task eval loss fell 2.214 → 1.752 (-20.9%)" in text
    assert "Improved on support-answers (contains)" in text
    assert f"Overfitting from step {ONSET_STEP}" in text and "(step 250)" in text
    assert "Forgetting on general-knowledge (acc_norm)" in text
    assert "arc-easy-mini" not in text  # a drop of 0.01 with an interval across 0: no alarm
    assert "3 row(s) were set aside" in text and "fix the rows listed in rejects.jsonl" in text
    assert "48 of 1600 training rows (3.0%)" in text
    assert "2 of 178 eval rows (nearly) repeat a training row." in text and "keep eval/test rows out" in text
    assert "12 of 1600 training rows" not in text  # 0.75 % duplicates: under DUPLICATE_SHARE_MAX
    assert "Try next" in text and "KL-to-base" in text and "fewer epochs" in text
    assert (
        "The fine-tune beat both cheaper alternatives on the eval loss: 1.752 vs 2.010 with 3 training examples "
        "in the prompt and 1.900 with 3 retrieved training examples."
    ) in text
    assert (
        "The fine-tune beat both cheaper alternatives on support-answers (contains): 0.610 vs 0.350 with 3 "
        "training examples in the prompt and 0.480 with 3 retrieved training examples."
    ) in text
    assert (
        "Checked and did not fire: safety regression, bias shift, no task gain, cheaper alternative as good, "
        "interrupted run."
    ) in text

    lines = verdict(full_report.parent)
    assert lines[0] == (
        "The fine-tune gained, at a cost: 5 pitfalls fired — overfitting, forgetting, "
        "rows rejected, rows truncated, data problems."
    )
    assert not any("not measured" in line for line in lines)


def test_curves_and_tables_mark_onset_and_colour_only_significant_deltas(full_report: Path) -> None:
    page = full_report.read_text(encoding="utf-8")
    assert f"Overfitting onset at step {ONSET_STEP}" in _section(page, "curves")
    general = _section(page, "general")
    assert '<td class="num bad">-0.070<span class="ci">[-0.110, -0.030]</span></td>' in general
    assert re.search(r'class="num neutral">-0\.010', general)
    assert re.search(r'class="num good">\+0\.390', _section(page, "task"))
    safety = _section(page, "safety")
    assert "bad" not in re.findall(r'class="num (\w+)"', safety)


def test_summary_generations_and_cost_show_the_run(full_report: Path) -> None:
    page = full_report.read_text(encoding="utf-8")
    summary = _section(page, "summary")
    assert "smollm2-135m-instruct" in summary and "4,884,480 of 139,399,488 (3.50%)" in summary
    assert "<details><summary>Resolved config (config.yaml)</summary>" in summary
    assert "3 row(s) set aside" in summary and "data/support.jsonl:233" in summary
    assert "<b>Data audit</b>" in summary and "eval_leakage" in summary and "duplicates" in summary
    assert "repeats data/support.jsonl:7 &lt;b&gt;" in summary
    gens = _section(page, "generations")
    assert gens.count('class="sample"') == 3 and "Canberra" in gens and "Sydney" in gens
    cost = _section(page, "cost")
    assert "30 min 43 s" in cost and "1,843,200" in cost and "1,000 tokens/s" in cost and "3.05 GB" in cost


def test_baselines_section_compares_every_variant_on_the_same_answers(full_report: Path) -> None:
    section = _section(full_report.read_text(encoding="utf-8"), "baselines")
    text = re.sub(r"<[^>]+>", " ", section)
    for label in (
        "base model, zero-shot",
        "base model + 3 training examples in the prompt",
        "base model + 3 retrieved training examples",
        "fine-tuned model, zero-shot",
    ):
        assert label in text
    assert "The same 26,700 answer tokens of 178 eval rows" in text
    # Δ is from the fine-tune's side: lower loss than the alternative is good.
    assert re.search(r'class="num good">-0\.258', section) and re.search(r'class="num good">-0\.148', section)
    assert "Task suite support-answers" in text and re.search(r'class="num good">\+0\.260', section)
    assert "Open Settings, then Account." in text  # the retrieval variant's sample answer
    assert section.count("<img ") == 1


@pytest.mark.parametrize(
    ("few_shot", "retrieval", "expected"),
    [
        (
            2.010,
            1.760,
            (
                "The base model with 3 retrieved training examples did as well as the fine-tune on the eval "
                "loss: 1.760 vs 1.752, tuned − it -0.008 [-0.058, +0.042] (includes 0). Consider retrieval "
                "augmentation (RAG) instead of fine-tuning; it did beat the base model with 3 training "
                "examples in the prompt (2.010)."
            ),
        ),
        (
            1.600,
            2.200,
            (
                "The base model with 3 training examples in the prompt beat the fine-tune on the eval loss: "
                "1.600 vs 1.752, tuned − it +0.152 [+0.102, +0.202]. Consider a few-shot prompt instead of "
                "fine-tuning; it did beat the base model with 3 retrieved training examples (2.200)."
            ),
        ),
    ],
)
def test_a_cheaper_alternative_as_good_as_the_fine_tune_is_a_pitfall(
    tmp_path: Path, few_shot: float, retrieval: float, expected: str
) -> None:
    run_dir = write_run(tmp_path / "run")
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    summary["baselines"] = _baselines(few_shot=few_shot, retrieval=retrieval)
    (run_dir / "eval_summary.json").write_text(json.dumps(summary))
    lines = verdict(run_dir)
    assert "cheaper alternative as good" in lines[0]
    assert f"{expected} Try next: if the alternative is good enough" in "\n".join(lines)
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert '<p class="bad">' in _section(page, "baselines")


def test_run_evaluated_without_baselines_says_how_to_measure_them(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    del summary["baselines"]
    (run_dir / "eval_summary.json").write_text(json.dumps(summary))
    lines = verdict(run_dir)
    assert any(
        line.startswith("Cheaper alternative as good: not measured in this run") and "eval.baselines.few_shot" in line
        for line in lines
    )
    assert "not measured in this run" in _section(build_report(run_dir).read_text(encoding="utf-8"), "baselines")


def test_run_with_only_config_and_metrics_builds_and_says_not_measured(tmp_path: Path) -> None:
    out = build_report(write_run(tmp_path / "bare", full=False))
    page = out.read_text(encoding="utf-8")
    for sid in ("task", "general", "safety", "generations"):
        assert "not measured in this run" in _section(page, sid), sid
        assert "tunewise eval" in _section(page, sid)
    assert "data:image/png;base64," in _section(page, "curves")  # the curve is still drawn
    assert "Wall time (from metrics.jsonl)" in _section(page, "cost")
    lines = verdict(tmp_path / "bare")
    assert lines[0].startswith("Gains not measured yet")
    assert any(line.startswith(f"Overfitting from step {ONSET_STEP}") for line in lines)
    assert any(line.startswith("Forgetting: not measured in this run") for line in lines)
    assert sorted(p.name for p in (tmp_path / "bare" / "plots").iterdir()) == ["learning_curves.png"]


def test_config_alone_builds(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    page = build_report(tmp_path).read_text(encoding="utf-8")
    assert "Learning curves: not measured in this run" in page
    assert "Cost: not measured in this run" in page
    assert "<img" not in page


def test_rebuild_drops_plots_that_no_longer_apply(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    build_report(run_dir)
    (run_dir / "eval_summary.json").unlink()
    build_report(run_dir)
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["learning_curves.png"]


def test_not_a_run_directory_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TunewiseError, match=rf"{re.escape(str(tmp_path))} is not a tunewise run directory"):
        build_report(tmp_path)
    with pytest.raises(TunewiseError, match="does not exist"):
        build_report(tmp_path / "nope")


def test_user_strings_are_escaped(tmp_path: Path) -> None:
    config = {**CONFIG, "model": {**CONFIG["model"], "name": "<script>alert('model')</script>"}}
    run_dir = write_run(tmp_path / "run", config=config)
    summary = json.loads((run_dir / "eval_summary.json").read_text())
    summary["generations"][0]["prompt"] = "<img src=x onerror=alert(1)> & <b>bold</b>"
    summary["suites"][1]["name"] = "<script>alert('suite')</script>"
    (run_dir / "eval_summary.json").write_text(json.dumps(summary))
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "<script" not in page and "<img src=x" not in page and "<b>bold" not in page
    # Jinja2's autoescape (markupsafe) writes a quote as &#39;.
    assert "&lt;script&gt;alert(&#39;model&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(&#39;suite&#39;)" in _section(page, "verdict")


def test_a_new_section_is_one_entry_in_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.report import build
    from tunewise.report.templating import Page, Section, render_template

    def broken(page: Page) -> Markup:
        raise ValueError("<bad field>")

    extra = Section(
        "extra", "Extra <b>", "Extra", lambda page: render_template("section_error.html.j2", error=page.run.dir.name)
    )
    monkeypatch.setattr(build, "SECTIONS", [*build.SECTIONS, extra, Section("broken", "Broken", "Broken", broken)])
    page = build_report(write_run(tmp_path / "<run>", full=False)).read_text(encoding="utf-8")
    assert [m.group(1) for m in re.finditer(r'<section id="(\w+)">', page)] == [*SECTION_IDS, "extra", "broken"]
    assert '<a href="#extra">Extra</a>' in page and "<h2>Extra &lt;b&gt;</h2>" in page
    assert "&lt;run&gt;" in _section(page, "extra")  # autoescaped, like every template
    # A section that raises costs that section only, and says why.
    assert "could not be rendered: ValueError: &lt;bad field&gt;" in _section(page, "broken")
    assert "could not be rendered" not in page.split('<section id="extra">')[0]


def test_unreadable_files_are_named_not_raised(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 605, "loss": 0.5')  # torn last line of a killed run
    (run_dir / "eval_summary.json").write_text("{not json")
    summary = json.loads((run_dir / "train_summary.json").read_text())
    (run_dir / "train_summary.json").write_text(json.dumps({**summary, "wall_s": "fast", "steps": None}))
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "metrics.jsonl: 1 line(s) not a JSON object, skipped (line 134)" in page
    assert "eval_summary.json: unreadable" in page
    assert "Task metrics vs base" in page and "could not be rendered" not in page


def test_overfitting_onset_rules() -> None:
    train = [(s, 2.0 - s / 100) for s in range(10, 101, 10)]  # falling
    smooth = rules.curves([{"step": s, "loss": v} for s, v in train]).smooth
    ev = [(20, 1.5), (40, 1.4), (60, 1.41), (80, 1.45), (100, 1.6)]
    onset = overfitting_onset(Curves(train, smooth, ev))
    assert onset is not None and (onset.step, onset.best_step) == (80, 40)  # 1.41 is within the 2 % tolerance
    rising = [(s, 1.0 + s / 100) for s in range(10, 101, 10)]
    rising_smooth = rules.curves([{"step": s, "loss": v} for s, v in rising]).smooth
    assert overfitting_onset(Curves(rising, rising_smooth, ev)) is None  # both rising: not overfitting
    assert overfitting_onset(Curves(train, smooth, ev[:2])) is None  # too few eval points to judge


def test_judge_reads_direction_and_the_bias_ideal() -> None:
    over = _suite("benign", "safety", "safety", "over_refusal_rate", False, 100, 0.05, 0.20, 0.05, 0.01)
    assert rules.judge(over) == "bad"
    refusal = _suite("harmful", "safety", "safety", "refusal_rate", True, 100, 0.80, 0.60, 0.1, 0.01)
    assert rules.judge(refusal) == "bad"
    toward = _suite("pairs", "bias", "bias", "stereotype_preference", None, 100, 0.62, 0.52, 0.05, 0.01)
    away = _suite("pairs", "bias", "bias", "stereotype_preference", None, 100, 0.52, 0.64, 0.05, 0.01)
    assert (rules.judge(toward), rules.judge(away)) == ("good", "bad")
    assert rules.judge({**away, "delta": {"value": 0.12, "low": -0.01, "high": 0.25}}) == "neutral"


def test_docs_list_every_threshold_with_its_value() -> None:
    doc = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    names = [n for n in dir(rules) if n.isupper() and isinstance(getattr(rules, n), (int, float))]
    assert len(names) >= 9
    for name in names:
        line = next((ln for ln in doc.splitlines() if ln.startswith(f"| `{name}` |")), None)
        assert line is not None, f"docs/report.md has no row for {name} in its thresholds table"
        value = f"{getattr(rules, name):g}"
        assert line.split("|")[2].strip() == value, f"docs/report.md gives {name} a value other than {value}"
    for rule in rules.PITFALLS:
        assert rule.name in doc, f"docs/report.md does not describe the '{rule.name}' rule"


# --- A real browser: the page renders offline and every section is in the DOM ---


def test_chromium_renders_every_section(full_report: Path, headless_chromium) -> None:
    dom = headless_chromium("--dump-dom", full_report.as_uri()).stdout
    for sid, heading in zip(SECTION_IDS, HEADINGS, strict=True):
        assert f'id="{sid}"' in dom
        assert heading in dom
    assert dom.count('src="data:image/png;base64,') == 5


def test_chromium_screenshot(full_report: Path, tmp_path: Path, headless_chromium) -> None:
    shot = tmp_path / "report.png"
    headless_chromium(f"--screenshot={shot}", "--window-size=1200,3000", full_report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_chromium_fails_with_the_install_command(monkeypatch: pytest.MonkeyPatch, headless_chromium) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        headless_chromium("--version")
