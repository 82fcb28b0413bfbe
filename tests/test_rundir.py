"""RunDir: atomic writes, naming of new run directories, and which process writes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tunewise.rundir import (
    EvalSummary,
    RunDir,
    TrainSummary,
    is_writer,
    new_dir_path,
    write_bytes,
    write_json,
    write_text,
)


class Explodes:
    """A value json can only write by calling `default`, which raises: the write fails midway."""


def refuse(value: object) -> object:
    raise TypeError(f"cannot serialise {value!r}")


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "train_summary.json", {"steps": 3})
    before = path.read_bytes()
    # The first keys are streamed to the temporary file before the bad value is reached.
    with pytest.raises(TypeError):
        write_json(path, {"steps": 4, "loss": [1.0] * 1000, "bad": Explodes()}, default=refuse)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_summary.json"]


def test_an_interrupted_text_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_text(tmp_path / "config.yaml", "old: 1\n")

    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("os.fsync", crash)  # killed after writing, before the rename
    with pytest.raises(KeyboardInterrupt):
        write_text(path, "new: 2\n")
    assert path.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_json_is_written_as_before(tmp_path: Path) -> None:
    payload = {"a": 1, "b": [1, 2], "c": Path("x")}
    write_json(tmp_path / "x.json", payload)
    assert (tmp_path / "x.json").read_text() == json.dumps(payload, indent=2, default=str) + "\n"


def test_json_keeps_non_ascii_text_when_asked(tmp_path: Path) -> None:
    payload = {"text": "café ✓"}
    write_json(tmp_path / "audit.json", payload, ensure_ascii=False)
    assert (tmp_path / "audit.json").read_text(encoding="utf-8") == (
        json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    write_json(tmp_path / "escaped.json", payload)
    assert "\\u2713" in (tmp_path / "escaped.json").read_text(encoding="utf-8")


def test_bytes_are_written_exactly_and_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    path = write_bytes(tmp_path / "plots" / "a.png", data)  # the folder is created
    assert path.read_bytes() == data

    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("os.fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        write_bytes(path, b"half")
    assert path.read_bytes() == data
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["a.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_files_get_the_mode_a_plain_write_gives(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = write_text(tmp_path / "config.yaml", "a: 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    path.chmod(0o640)  # a mode someone chose is kept on rewrite
    write_bytes(path, b"a: 2\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_new_names_never_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.strftime", lambda fmt: "20250101-120000")
    first = new_dir_path(tmp_path, "demo")
    assert first.name == "demo-20250101-120000"
    first.mkdir()
    second = new_dir_path(tmp_path, "demo")
    assert second.name == "demo-20250101-120000-2"
    second.mkdir()
    assert new_dir_path(tmp_path, "demo").name == "demo-20250101-120000-3"
    assert RunDir.new(tmp_path, None, "configs/demo.yaml", kind="cv").name == "demo-cv-20250101-120000"
    assert RunDir.new(tmp_path, "mine", "configs/demo.yaml").path == tmp_path / "mine"


def test_newest_finds_runs_only(tmp_path: Path) -> None:
    for name in ("demo-20250101-120000", "demo-20250102-120000", "demo-cv-20250103-120000"):
        (tmp_path / name).mkdir()
    (tmp_path / "demo-20250101-120000" / RunDir.CONFIG).write_text("{}")
    (tmp_path / "demo-20250102-120000" / RunDir.CONFIG).write_text("{}")
    (tmp_path / "demo-cv-20250103-120000" / RunDir.CV_PLAN).write_text("{}")
    found = RunDir.newest(tmp_path, None, "demo.yaml", must_exist=True)
    assert found is not None and found.name == "demo-20250102-120000"
    assert RunDir.newest(tmp_path, "absent", "demo.yaml", must_exist=True) is None


@pytest.mark.parametrize(
    ("env", "writes"),
    [
        ({}, True),
        ({"RANK": "0"}, True),
        ({"RANK": "1"}, False),
        ({"LOCAL_RANK": "2"}, False),
        ({"RANK": "0", "LOCAL_RANK": "3"}, True),
    ],
)
def test_only_rank_zero_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], writes: bool
) -> None:
    for variable in ("RANK", "LOCAL_RANK"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert is_writer() is writes
    run = RunDir(tmp_path / "run")
    run.mkdir()
    write_json(run.train_summary, {"steps": 1})
    write_text(run.config, "a: 1\n")
    write_bytes(run.report, b"<html></html>\n")
    assert run.train_summary.is_file() is writes and run.config.is_file() is writes
    assert run.report.is_file() is writes
    if not writes:
        assert not run.exists(), "another rank creates nothing"


def test_summaries_round_trip_with_their_schema_version(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    train = TrainSummary(
        steps=4,
        interrupted=False,
        train_loss=1.5,
        tokens_seen=100,
        wall_s=2.0,
        tokens_per_s=50.0,
        peak_rss_mb=10.0,
        checkpoint=None,
        trainable_parameters=8,
        total_parameters=80,
        trainable_percent=10.0,
        method="lora",
    )
    run.write_train_summary(train)
    on_disk = json.loads(run.train_summary.read_text())
    assert on_disk["schema_version"] == 1 and list(on_disk)[-1] == "schema_version"
    assert run.read_train_summary() == train
    # A summary written before the schema version existed reads as version 1; unknown keys are ignored.
    legacy = {k: v for k, v in on_disk.items() if k != "schema_version"} | {"later_key": 1}
    assert TrainSummary.from_dict(legacy) == train

    sections = {
        "base": {"loss": 2.0, "perplexity": 7.4},
        "tuned": {"loss": 1.0, "perplexity": 2.7},
        "delta_loss": -1.0,
        "suites": [
            {"name": "gk", "metric": "acc", "base": {"value": 0.2}, "tuned": {"value": 0.3}, "delta": {"value": 0.1}}
        ],
    }
    run.write_eval_summary(sections)
    read = run.read_eval_summary()
    assert read.sections == sections and read.schema_version == 1
    assert (
        read.metrics()
        == EvalSummary(sections).metrics()
        == {
            "eval_loss/base": 2.0,
            "eval_loss/tuned": 1.0,
            "eval_loss/delta": -1.0,
            "perplexity/base": 7.4,
            "perplexity/tuned": 2.7,
            "suite/gk/acc/base": 0.2,
            "suite/gk/acc/tuned": 0.3,
            "suite/gk/acc/delta": 0.1,
        }
    )
