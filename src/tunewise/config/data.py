"""The `data:` section: where the data is, how it becomes training tokens, its audit and cleaning."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from tunewise.config._section import Section

__all__ = [
    "CheckConfig",
    "CheckKind",
    "CleanConfig",
    "CleanDrop",
    "DataConfig",
    "DatasetConfig",
    "MixingConfig",
    "PiiKind",
    "Shape",
    "SplitConfig",
]


class SplitConfig(Section):
    """How to carve eval/test rows out of the training file when no separate file is given."""

    eval: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    test: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> SplitConfig:
        if self.eval + self.test >= 1.0:
            raise ValueError(f"eval + test = {self.eval + self.test:g} leaves no training rows; keep it below 1")
        return self


Shape = Literal["auto", "chat", "alpaca", "sharegpt", "prompt_completion", "text"]


CheckKind = Literal[
    "duplicates",
    "eval_leakage",
    "test_leakage",
    "contamination",
    "format",
    "empty",
    "too_short",
    "too_long",
    "truncated",
    "repetition",
    "boilerplate",
    "non_text",
    "pii",
    "secrets",
    "toxicity",
    "label_imbalance",
    "preference_bias",
    "demographic_imbalance",
]
PiiKind = Literal["secret", "email", "iban", "credit_card", "national_id", "ip_address", "phone"]
_PII_KINDS: list[PiiKind] = ["secret", "email", "iban", "credit_card", "national_id", "ip_address", "phone"]
CleanDrop = Literal[
    "duplicates",
    "format",
    "empty",
    "too_short",
    "too_long",
    "truncated",
    "repetition",
    "non_text",
    "toxicity",
    "contamination",
    "secrets",
    "pii",
]
_DEFAULT_DROP: list[CleanDrop] = ["duplicates", "format", "empty"]


class CheckConfig(Section):
    """The data audit (`tunewise data audit`), run before training: every finding of docs/data.md."""

    enabled: bool = True
    """Audit the prepared rows before training (writes audit.json in the run directory)."""
    near_duplicate_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    """Jaccard similarity of word 3-gram sets (MinHash LSH, verified) at which two rows are near duplicates."""
    contamination_ngram: Annotated[int, Field(ge=4)] = 8
    """An eval-suite item sharing this many consecutive words with a training row is contaminated."""
    min_tokens: Annotated[int, Field(ge=1)] = 2
    """An answer shorter than this many tokens (of the model's tokenizer) is `too_short`."""
    max_tokens: Annotated[int, Field(ge=1)] = 4096
    """A row longer than this many tokens is `too_long` (longer than data.max_length: `truncated`)."""
    pii: list[PiiKind] = Field(default_factory=lambda: list(_PII_KINDS))
    """Which kinds of personal data and secrets to look for."""
    toxicity: bool = True
    """Score answers with the offensive-language classifier (alt-profanity-check, offline)."""
    toxicity_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    """Classifier probability from which an answer counts as toxic."""
    imbalance_ratio: Annotated[float, Field(gt=1.0)] = 3.0
    """Largest / smallest class (labels, or demographic groups per role) from which they are imbalanced."""
    block_on: list[CheckKind] = Field(default_factory=list)
    """Findings that stop the run before training (exit 2), e.g. [eval_leakage, contamination, secrets]."""


class CleanConfig(Section):
    """What `tunewise data clean` removes and redacts; every removed or changed row goes to rejects.jsonl."""

    drop: list[CleanDrop] = Field(default_factory=lambda: list(_DEFAULT_DROP))
    """Findings whose rows are removed (duplicates: the first row of each cluster is kept); add e.g.
    repetition, non_text, toxicity, too_long after reading the audit."""
    redact: list[PiiKind] = Field(default_factory=lambda: list(_PII_KINDS))
    """Kinds of personal data replaced by typed placeholders (<EMAIL>, <PHONE>, <SECRET>, ...)."""


class DatasetConfig(Section):
    """One dataset of a multi-task mixture (`data.datasets`)."""

    name: Annotated[str, Field(min_length=1)]
    """Shown in logs, eval_summary.json and the report."""
    train: str
    """Training file, any format `data.train` takes."""
    eval: str | None = None
    """Eval file; when absent, `data.split` holds out rows of this dataset's training file."""
    weight: Annotated[float, Field(gt=0)] | None = None
    """Sampling weight under `mixing.strategy: weights` (normalised over the datasets)."""


class MixingConfig(Section):
    """How training rows are drawn from `data.datasets`."""

    strategy: Literal["temperature", "weights"] = "temperature"
    """temperature: p_i ∝ n_i^(1/T) (T5/mT5); weights: p_i ∝ datasets[i].weight."""
    temperature: Annotated[float, Field(gt=0)] = 1.0
    """1 samples in proportion to size (plain concatenation); higher flattens towards uniform."""
    seed: int = 0
    """Seed of the draw."""


class DataConfig(Section):
    """Where the data is and how it becomes training tokens."""

    train: str | None = None
    """Training file: .jsonl, .json, .csv, .parquet, or a directory saved by `datasets`."""
    eval: str | None = None
    """Eval file; when absent, `split.eval` of the training rows (seeded) is held out."""
    test: str | None = None
    """Test file; when absent, `split.test` of the training rows is held out."""
    shape: Shape = "auto"
    columns: dict[str, str] | None = None
    """Rename columns before shape detection, e.g. {question: prompt, answer: completion}."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    max_length: Annotated[int, Field(gt=0)] = 1024
    train_on: Literal["all_assistant", "last_assistant", "everything"] = "all_assistant"
    on_bad_rows: Literal["error", "skip"] = "error"
    """`skip` writes each bad row with its reason to rejects.jsonl in the run directory."""
    check: CheckConfig = Field(default_factory=CheckConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    datasets: list[DatasetConfig] = Field(default_factory=list)
    """Multi-task: several datasets mixed by `mixing`, each evaluated on its own (instead of `train`)."""
    mixing: MixingConfig = Field(default_factory=MixingConfig)
    label_names: dict[str, str] | None = None
    """task classification: words for the labels of the file, e.g. {0: negative, 1: positive}; used by the
    zero-shot baseline's prompt and in reports."""

    @field_validator("label_names", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        # YAML reads `{0: negative}` with an int key; labels are compared as text everywhere.
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
