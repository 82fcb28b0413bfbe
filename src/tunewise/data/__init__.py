"""Training data: read files, normalise their shapes, render them with a loss mask, preview it.

The path from a user's file to what the model trains on, in order:

    # io.py: any format; every row keeps its file:line
    rows = read_rows("data/train.jsonl")
    # shapes.py: chat / alpaca / sharegpt / prompt_completion / text -> Example
    examples, rejects = load_examples("data/train.jsonl", on_bad_rows="skip")
    train, eval_, test = split_examples(examples, eval_fraction=0.1, test_fraction=0.1, seed=0)
    # dedup.py: exact and near duplicates (MinHash LSH, verified Jaccard); leakage between sets
    clusters = near_duplicate_clusters([example_text(ex) for ex in examples], threshold=0.8)
    leaked = cross_duplicates([example_text(ex) for ex in train], [example_text(ex) for ex in eval_])
    # templates.py: the model's own chat template, or a named one; ids + loss mask
    resolve_chat_template(tokenizer, None)
    rendered, stats, too_long = render_all(train, tokenizer, max_length=2048)
    # preview.py: see what is trained
    preview(rendered, tokenizer, stats, n=3)
    # audit.py / clean.py: what is wrong with the data (docs/data.md), and the fix with a rejects file
    audit = audit_files({"train": ["data/train.jsonl"]}, config.data.check)
    result = clean_files(["data/train.jsonl"], "clean/", config.data.clean, config.data.check)
"""

from tunewise.data._generation import ModelGenerator
from tunewise.data.audit import Audit, Finding, audit_files
from tunewise.data.clean import CleanResult, clean_files
from tunewise.data.dedup import (
    DuplicatePair,
    StreamDeduper,
    cross_duplicates,
    example_text,
    near_duplicate_clusters,
    normalise,
)
from tunewise.data.io import SUPPORTED_FORMATS, Row, read_rows
from tunewise.data.pii import find_pii, redact
from tunewise.data.preview import preview
from tunewise.data.shapes import (
    SHAPES,
    BadRow,
    Example,
    Reject,
    detect_shape,
    load_examples,
    split_examples,
    to_example,
    write_rejects,
)
from tunewise.data.templates import (
    IGNORE_INDEX,
    NAMED_TEMPLATES,
    TRAIN_ON,
    Rendered,
    RenderStats,
    TrainOn,
    render,
    render_all,
    resolve_chat_template,
)

__all__ = [
    "IGNORE_INDEX",
    "NAMED_TEMPLATES",
    "SHAPES",
    "SUPPORTED_FORMATS",
    "TRAIN_ON",
    "Audit",
    "BadRow",
    "CleanResult",
    "DuplicatePair",
    "Example",
    "Finding",
    "ModelGenerator",
    "Reject",
    "RenderStats",
    "Rendered",
    "Row",
    "StreamDeduper",
    "TrainOn",
    "audit_files",
    "clean_files",
    "cross_duplicates",
    "detect_shape",
    "example_text",
    "find_pii",
    "load_examples",
    "near_duplicate_clusters",
    "normalise",
    "preview",
    "read_rows",
    "redact",
    "render",
    "render_all",
    "resolve_chat_template",
    "split_examples",
    "to_example",
    "write_rejects",
]
