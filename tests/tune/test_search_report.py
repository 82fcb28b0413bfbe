"""The search report's page from a summary, without training: every user string escaped once, the
sections and their ids, a link to a trial's report card only where one exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tunewise.tune.report import history_plot, pareto_plot, render


def trial(number: int, state: str, values: list[float] | None, params: dict[str, Any], **extra: Any) -> dict:
    return {
        "number": number,
        "state": state,
        "values": values,
        "params": params,
        "duration_s": 1.5,
        "run_dir": f"trial-{number:04d}",
        "pruned_at": None,
        "error": None,
        "intermediate": {},
        **extra,
    }


def summary(trials: list[dict], best: list[int], objectives: list[str]) -> dict:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return {
        "study": "lr<search>&co",
        "storage": "sqlite:///study.db",
        "objectives": objectives,
        "directions": ["minimize"] * len(objectives),
        "sampler": "random",
        "pruner": "median",
        "prune_metric": "eval_loss",
        "space": {"train.lr": {"choice": ["<1e-3>", 0.01]}},
        "counts": counts,
        "best": best,
        "trials": trials,
        "best_configs": ["best.yaml"] if best else [],
        "importances": {"eval_loss": {"train.lr": 1.0}} if best else {},
    }


def test_the_page_escapes_every_user_string_once_and_links_existing_trial_reports(tmp_path: Path) -> None:
    (tmp_path / "trial-0000").mkdir()
    (tmp_path / "trial-0000" / "report.html").write_text("<html></html>")
    trials = [
        trial(0, "COMPLETE", [1.25], {"train.lr": "<1e-3>"}),
        trial(1, "FAIL", None, {"train.lr": 0.01}, error="bad <value> & more"),
        trial(2, "PRUNED", [9.0], {"train.lr": 0.01}, pruned_at=3),
    ]
    html = render(
        summary(trials, [0], ["eval_loss"]),
        {"history.png": history_plot([(0, 1.25)], "eval_loss", "minimize")},
        tmp_path,
    )

    assert re.findall(r'<section id="(\w+)"><h2>([^<]+)</h2>', html) == [
        ("summary", "Search summary"),
        ("best", "Best trial"),
        ("trials", "Trials"),
        ("importance", "Parameter importance"),
    ]
    assert "<title>tunewise search — lr&lt;search&gt;&amp;co</title>" in html
    assert "<li>trial 0: eval_loss 1.2500 — <code>train.lr=&lt;1e-3&gt;</code></li>" in html, "a real list"
    assert "&lt;ul&gt;" not in html and "&amp;lt;" not in html, "nothing is escaped twice"
    assert '<span class="ci">bad &lt;value&gt; &amp; more</span>' in html
    assert '<a href="trial-0000/report.html">trial-0000</a>' in html
    assert "trial-0001/report.html" not in html, "no link to a report card that was not written"
    assert 'class="neutral">pruned at step 3<' in html
    assert html.count('<img class="plot" alt="objective by trial" src="data:image/png;base64,') == 1
    assert "<code>tunewise train</code>: <code>best.yaml</code>." in html
    assert '<td class="num">1.000</td>' in html  # the fANOVA importance
    assert html.endswith("</html>\n") and "<style>" in html and ".plot" in html


def test_two_objectives_show_the_pareto_front_and_an_empty_search_says_so(tmp_path: Path) -> None:
    trials = [trial(0, "COMPLETE", [1.0, 0.5], {"train.lr": 0.01}), trial(1, "COMPLETE", [2.0, 0.1], {"train.lr": 0.1})]
    png = pareto_plot([(0, 1.0, 0.5), (1, 2.0, 0.1)], [0, 1], ["eval_loss", "forgetting"], ["minimize", "minimize"])
    html = render(summary(trials, [0, 1], ["eval_loss", "forgetting"]), {"pareto.png": png}, tmp_path)
    assert '<section id="best"><h2>Pareto front</h2><p class="note">No trial on the front' in html
    assert 'alt="Pareto front"' in html and "trial 1: eval_loss 2.0000, forgetting 0.1000" in html

    empty = render(summary([trial(0, "RUNNING", None, {})], [], ["eval_loss"]), {}, tmp_path)
    assert '<section id="best"><h2>Best trial</h2><p class="missing">No trial has completed yet.</p>' in empty
    assert "No trial completed yet: nothing to weigh." in empty and "<img" not in empty
