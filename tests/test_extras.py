"""The lean core install: optional features behind extras, each naming its extra when it is missing.

A missing package is simulated with `sys.modules[name] = None`, which makes `import name` raise
ImportError exactly as an uninstalled package does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from tunewise.config import CheckConfig, Config
from tunewise.data.audit import audit_files, print_audit
from tunewise.data.quality import load_toxicity_classifier
from tunewise.errors import TunewiseError
from tunewise.extras import EXTRAS, MissingExtraError, require
from tunewise.report import build_report

OPTIONAL = ["mlflow", "tensorboard", "optuna", "profanity_check"]


def missing(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make `import NAME` (and its submodules) fail as if the package were not installed."""
    for name in names:
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            monkeypatch.delitem(sys.modules, loaded)
        monkeypatch.setitem(sys.modules, name, None)


def test_every_optional_module_maps_to_an_extra_declared_in_pyproject() -> None:
    import tomllib

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    extras = declared["optional-dependencies"]
    for module, (extra, package) in EXTRAS.items():
        assert any(req.startswith(package) for req in extras[extra]), (module, extra, package)
        assert not any(req.startswith(package) for req in declared["dependencies"]), f"{package} is in the core"


def test_require_names_the_extra_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    missing(monkeypatch, "profanity_check")
    with pytest.raises(MissingExtraError) as caught:
        require("profanity_check", feature="the toxicity check")
    err = caught.value
    assert isinstance(err, TunewiseError)
    assert (err.package, err.extra, err.feature) == ("alt-profanity-check", "toxicity", "the toxicity check")
    assert "the toxicity check needs alt-profanity-check" in str(err)
    assert "pip install 'tunewise[toxicity]'" in str(err)


def test_require_returns_the_module_when_installed() -> None:
    pytest.importorskip("optuna")
    assert require("optuna", feature="x").__name__ == "optuna"


# --- tune ---


def test_tune_without_optuna_stops_at_once_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tunewise.tune import tune

    missing(monkeypatch, "optuna")
    config = Config(output={"dir": str(tmp_path / "runs")})
    with pytest.raises(MissingExtraError, match=r"install tunewise\[tune\]"):
        tune(config, None)
    assert not (tmp_path / "runs").exists(), "nothing is read or written before the check"


def test_tunewise_tune_command_without_optuna_prints_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tunewise.cli import main

    config = tmp_path / "search.yaml"
    config.write_text(f"output: {{dir: {tmp_path / 'runs'}}}\n")
    missing(monkeypatch, "optuna")
    monkeypatch.setattr(sys, "argv", ["tunewise", "tune", str(config)])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "tunewise tune" in err and "optuna" in err and "tunewise[tune]" in err and "Traceback" not in err


# --- tracking ---


@pytest.fixture()
def fresh_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    import tunewise.tracking

    # Trackers that failed are remembered per process; start from none.
    monkeypatch.setattr(tunewise.tracking, "_broken", set())
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def test_tracking_without_the_extra_is_switched_off_with_one_warning_and_noted(
    fresh_tracking: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tunewise.tracking import TRACKING_FILE, Tracker, mlflow_run_id

    missing(monkeypatch, "mlflow", "tensorboard")
    run_dir = tmp_path / "runs" / "demo-1"
    run_dir.mkdir(parents=True)
    config = Config(output={"dir": str(tmp_path / "runs"), "tracking": ["mlflow", "tensorboard"]})
    for _ in range(3):  # train, eval and report each open the trackers: one warning per tracker
        tracker = Tracker.open(config, run_dir)
        assert tracker.backends == [] and tracker.describe() is None
        tracker.log_metrics({"train/loss": 1.0}, step=1)  # a no-op, not an error
        tracker.close("FINISHED")
    said = caplog.text + capsys.readouterr().err
    assert said.count("mlflow tracking is off") == 1 and said.count("tensorboard tracking is off") == 1, said
    assert said.count("pip install 'tunewise[tracking]'") == 2
    saved = json.loads((run_dir / TRACKING_FILE).read_text())
    assert set(saved) == {"off"} and set(saved["off"]) == {"mlflow", "tensorboard"}
    assert "MLflow tracking" in saved["off"]["mlflow"] and "tunewise[tracking]" in saved["off"]["mlflow"]
    assert "TensorBoard tracking" in saved["off"]["tensorboard"]
    assert mlflow_run_id(run_dir) is None
    assert not (tmp_path / "runs" / "mlflow.db").exists() and not (run_dir / "tensorboard").exists()


def test_a_tracker_installed_later_clears_its_off_note(
    fresh_tracking: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    from tunewise.tracking import TRACKING_FILE, Tracker

    run_dir = tmp_path / "runs" / "demo-1"
    run_dir.mkdir(parents=True)
    (run_dir / TRACKING_FILE).write_text(json.dumps({"off": {"tensorboard": "not installed", "mlflow": "no"}}))
    config = Config(output={"dir": str(tmp_path / "runs"), "tracking": ["tensorboard"]})
    tracker = Tracker.open(config, run_dir)
    tracker.close()
    saved = json.loads((run_dir / TRACKING_FILE).read_text())
    # TensorBoard works now; MLflow is no longer configured, so its old note goes too.
    assert set(saved) == {"tensorboard"} and saved["tensorboard"]["log_dir"].endswith("tensorboard")


# --- the audit's toxicity check ---


@pytest.fixture()
def no_classifier(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    missing(monkeypatch, "profanity_check")
    load_toxicity_classifier.cache_clear()
    yield
    load_toxicity_classifier.cache_clear()  # the next test loads the real one again


def _toxic_file(tmp_path: Path) -> str:
    rows = [
        {
            "instruction": f"Say something about topic {i}, please.",
            "input": "",
            "output": f"Topic {i} is interesting in its own particular way, as many are.",
        }
        for i in range(8)
    ]
    rows[3]["output"] = "Shut up, you stupid fucking idiot."
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_audit_without_the_classifier_says_toxicity_was_skipped(no_classifier: None, tmp_path: Path) -> None:
    audit = audit_files({"train": [_toxic_file(tmp_path)]}, CheckConfig(toxicity=True), count_tokens=None)
    assert "toxicity" not in [f.kind for f in audit.findings]
    assert list(audit.skipped) == ["toxicity"]
    why = audit.skipped["toxicity"]
    assert "alt-profanity-check" in why and "pip install 'tunewise[toxicity]'" in why
    assert "data.check.toxicity=false" in why
    assert audit.to_dict()["skipped"] == {"toxicity": why}

    console = Console(record=True, width=300)
    print_audit(audit, console)
    text = console.export_text()
    assert "skipped:" in text and "tunewise[toxicity]" in text
    assert "toxicity or format problems" not in text, "a skipped check is not reported as clean"

    run_dir = tmp_path / "run"  # the report card shows the skip too
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {name: tiny}\n", encoding="utf-8")
    audit.write(run_dir / "audit.json")
    html = build_report(run_dir).read_text(encoding="utf-8")
    assert "Skipped:" in html and "tunewise[toxicity]" in html and "toxic answers" not in html


def test_audit_does_not_skip_toxicity_when_it_blocks(no_classifier: None, tmp_path: Path) -> None:
    with pytest.raises(MissingExtraError, match=r"tunewise\[toxicity\]"):
        audit_files({"train": [_toxic_file(tmp_path)]}, CheckConfig(toxicity=True, block_on=["toxicity"]))


def test_audit_with_toxicity_off_or_installed_reports_no_skip(tmp_path: Path) -> None:
    off = audit_files({"train": [_toxic_file(tmp_path)]}, CheckConfig(toxicity=False))
    assert off.skipped == {} and "skipped" not in off.to_dict()
    pytest.importorskip("profanity_check")
    on = audit_files({"train": [_toxic_file(tmp_path)]}, CheckConfig(toxicity=True))
    assert on.skipped == {} and [f.kind for f in on.findings] == ["toxicity"]


# --- the core imports none of them ---


def test_import_tunewise_and_help_load_no_optional_package() -> None:
    script = f"""
import sys
blocked = {OPTIONAL!r}
import tunewise, tunewise.tune, tunewise.tracking, tunewise.data.audit
from tunewise.cli import app
try:
    app(["--help"], standalone_mode=True)
except SystemExit as done:
    assert done.code == 0, done.code
print(sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in blocked))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]


def test_the_core_works_with_every_optional_package_missing() -> None:
    script = f"""
import sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None
from tunewise.cli import app
for args in (["--help"], ["tune", "--help"], ["data", "audit", "--help"]):
    try:
        app(args, standalone_mode=True)
    except SystemExit as done:
        assert done.code == 0, (args, done.code)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().endswith("ok"), out.stdout[-2000:] + out.stderr[-2000:]


def test_a_broken_install_shows_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    def broken(name: str, package: str | None = None):
        raise ImportError("cannot import name 'Thing' from 'sqlalchemy'")

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(MissingExtraError) as caught:
        require("optuna", feature="tunewise tune")
    assert str(caught.value) == (
        "tunewise tune needs optuna, which cannot be used (ImportError: cannot import name "
        "'Thing' from 'sqlalchemy'): install tunewise[tune] (pip install 'tunewise[tune]')"
    )


def test_a_missing_package_message_is_one_plain_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    missing(monkeypatch, "optuna")
    with pytest.raises(MissingExtraError) as caught:
        require("optuna.trial", feature="tunewise tune")
    assert str(caught.value) == (
        "tunewise tune needs optuna, which is not installed: install tunewise[tune] (pip install 'tunewise[tune]')"
    )
