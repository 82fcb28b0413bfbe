"""Self-Instruct-style synthetic data: a local model writes new tasks from seed tasks, then answers them.

The loop (Wang et al. 2023, "Self-Instruct"), one attempt at a time, in batches:

1. few-shot prompt: `shots` tasks drawn from the seeds and (up to `machine_shots` of them) from
   the tasks accepted so far, then "write one new task";
2. the reply is cut to one task and filtered, in this order, each rejection with its reason:
   - length: fewer than `min_words` or more than `max_words` words;
   - tasks a text model cannot do (images, files, audio, ...), as in Self-Instruct's filter;
   - near duplicate of a seed or an accepted task: MinHash LSH over word 3-grams
     (`tunewise.data.dedup` signatures in a `datasketch.MinHashLSH`), every candidate verified
     by its exact Jaccard similarity (`dedup_threshold`);
   - ROUGE-L F1 (the `rouge-score` package) with any seed or accepted task at or above
     `rouge_threshold` (0.7, as in Self-Instruct);
3. the model answers each surviving task; an empty answer is a rejection too.

Accepted tasks are appended to the output as chat rows (`messages`: user task, assistant answer)
with `provenance`; rejected ones to `<out stem>.rejects.jsonl`. Both are written after every
batch, so an interrupted job loses at most one batch, and running the same command again resumes:
the accepted tasks rejoin the pool, the attempt count carries on, and each batch is seeded by its
first attempt's number, so a resumed job samples what an uninterrupted one would have.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tunewise.data._generation import Generator, append_jsonl, progress
from tunewise.data.augment import rejects_path
from tunewise.data.dedup import as_minhashes, jaccard, minhash_signatures, normalise
from tunewise.errors import DataError, TunewiseError

__all__ = ["Seed", "SynthResult", "TaskFilter", "default_seeds_path", "load_seeds", "synthesize"]

_NGRAM = 3
_NUM_PERM = 128
# Self-Instruct drops tasks that a language model cannot carry out in text.
_UNDOABLE = re.compile(
    r"\b(images?|pictures?|photos?|graphs?|drawings?|draw|plots?|maps?|files?|"
    r"videos?|audio|music|flowcharts?|diagrams?|go to|url|website)\b",
    re.I,
)


@dataclass(frozen=True)
class Seed:
    """A seed task.

    Attributes:
        source: `file:line` of the seed.
        instruction: the task as the user asks it (Alpaca `input` appended, as in training).
        answer: the reference answer (shown in no prompt; kept for reference).
    """

    source: str
    instruction: str
    answer: str


def default_seeds_path() -> Path:
    """tunewise's own seed tasks (24 project-authored tasks of varied kinds)."""
    return Path(str(resources.files("tunewise.data").joinpath("synth_seeds.jsonl")))


def load_seeds(path: str | Path | None = None) -> list[Seed]:
    """Read seed tasks from any supported data file of any chat/Alpaca/prompt-completion shape.

    Raises:
        DataError: the file cannot be read or a row is malformed (named by `file:line`).
    """
    from tunewise.data.shapes import load_examples

    path = path if path is not None else default_seeds_path()
    examples, _ = load_examples(path, on_bad_rows="error")
    seeds = []
    for ex in examples:
        if ex.messages is None:
            raise DataError(
                f"{ex.source}: seed tasks need a task and an answer (instruction/output, "
                "prompt/completion or messages), not plain text."
            )
        turns = [m for m in ex.messages if m["role"] != "system"]
        seeds.append(Seed(ex.source, turns[0]["content"], turns[1]["content"] if len(turns) > 1 else ""))
    return seeds


# --------------------------------------------------------------------------- filtering


class TaskFilter:
    """The Self-Instruct filter: length, undoable tasks, MinHash near duplicates, ROUGE-L.

    Args:
        pool: the texts new tasks must differ from (seeds, and tasks accepted earlier), each
            `(name, text)`; `name` appears in rejection reasons.
        rouge_threshold: reject at ROUGE-L F1 >= this with any pool text.
        dedup_threshold: reject at word-3-gram Jaccard >= this with any pool text.
        min_words, max_words: accepted length of a task, in words.
    """

    def __init__(
        self,
        pool: Sequence[tuple[str, str]] = (),
        *,
        rouge_threshold: float = 0.7,
        dedup_threshold: float = 0.7,
        min_words: int = 3,
        max_words: int = 150,
    ) -> None:
        from datasketch import MinHashLSH
        from rouge_score import rouge_scorer

        if not 0 < rouge_threshold <= 1:
            raise TunewiseError(f"--rouge-threshold {rouge_threshold}: must be above 0 and at most 1")
        if not 0 < dedup_threshold <= 1:
            raise TunewiseError(f"--dedup-threshold {dedup_threshold}: must be above 0 and at most 1")
        if min_words < 1 or max_words < min_words:
            raise TunewiseError(f"--min-words {min_words} / --max-words {max_words}: need 1 <= min <= max")
        self.rouge_threshold, self.dedup_threshold = rouge_threshold, dedup_threshold
        self.min_words, self.max_words = min_words, max_words
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        try:
            self._lsh = MinHashLSH(threshold=dedup_threshold, num_perm=_NUM_PERM)
        except ValueError:  # thresholds near 1: one band of all rows (identical signatures)
            self._lsh = MinHashLSH(num_perm=_NUM_PERM, params=(1, _NUM_PERM))
        self._names: list[str] = []
        self._texts: list[str] = []
        self._exact: dict[str, int] = {}
        for name, text in pool:
            self.add(name, text)

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, name: str, text: str) -> None:
        """Put a text into the pool that later tasks are compared with."""
        i = len(self._texts)
        self._names.append(name)
        self._texts.append(text)
        self._exact.setdefault(normalise(text), i)
        (minhash,) = as_minhashes(minhash_signatures([text], num_perm=_NUM_PERM, ngram=_NGRAM))
        self._lsh.insert(str(i), minhash)

    def check(self, text: str) -> tuple[str | None, dict[str, Any]]:
        """Why `text` is rejected (None if accepted), and the scores that decided it.

        Returns:
            `(reason, scores)`; scores hold `rouge_l_max` and `nearest` (the pool text with the
            highest ROUGE-L) when they were computed.
        """
        words = len(text.split())
        if words < self.min_words:
            return f"too short: {words} words (--min-words {self.min_words})", {}
        if words > self.max_words:
            return f"too long: {words} words (--max-words {self.max_words})", {}
        undoable = _UNDOABLE.search(text)
        if undoable:
            return f"asks for something a text model cannot do ({undoable.group(0)!r})", {}
        exact = self._exact.get(normalise(text))
        if exact is not None:
            return f"exact duplicate of {self._names[exact]}", {"jaccard": 1.0, "nearest": self._names[exact]}
        (minhash,) = as_minhashes(minhash_signatures([text], num_perm=_NUM_PERM, ngram=_NGRAM))
        best: tuple[float, int] | None = None
        for key in self._lsh.query(minhash):
            i = int(key)
            similarity = jaccard(text, self._texts[i], ngram=_NGRAM)
            if similarity >= self.dedup_threshold and (best is None or (similarity, -i) > (best[0], -best[1])):
                best = (similarity, i)
        if best is not None:
            return (
                f"near duplicate of {self._names[best[1]]} (Jaccard {best[0]:.2f} >= {self.dedup_threshold})",
                {"jaccard": round(best[0], 4), "nearest": self._names[best[1]]},
            )
        rouge_max, nearest = 0.0, None
        for i, other in enumerate(self._texts):
            score = self._scorer.score(other, text)["rougeL"].fmeasure
            if score > rouge_max:
                rouge_max, nearest = score, i
        scores = {"rouge_l_max": round(rouge_max, 4), "nearest": self._names[nearest] if nearest is not None else None}
        if rouge_max >= self.rouge_threshold:
            return f"ROUGE-L {rouge_max:.2f} >= {self.rouge_threshold} with {scores['nearest']}", scores
        return None, scores


# --------------------------------------------------------------------------- prompting


_PROMPT = (
    "You write tasks for an AI assistant. Here are some example tasks:\n\n{examples}\n\n"
    "Write one new task, on a different topic from all of these. Reply with the task only."
)
_TASK_LABEL = re.compile(r"^\s*(?:new\s+)?(?:task|instruction)\s*\d*\s*[:.)-]\s*", re.I)


def _parse_task(reply: str) -> str:
    """The first task in a reply: labels ("Task 4:") removed, cut at the next task or blank line."""
    text = _TASK_LABEL.sub("", reply.strip())
    text = re.split(r"\n\s*\n|\n\s*(?:task|instruction)\s*\d*\s*[:.)-]", text, maxsplit=1, flags=re.I)[0]
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _shots(
    rng: random.Random, seeds: Sequence[Seed], machine: Sequence[tuple[str, str]], shots: int, machine_shots: int
) -> list[tuple[str, str]]:
    take_machine = min(machine_shots, len(machine), shots)
    picked = rng.sample(list(machine), take_machine) if take_machine else []
    picked += [(s.source, s.instruction) for s in rng.sample(list(seeds), min(shots - take_machine, len(seeds)))]
    rng.shuffle(picked)
    return picked


# --------------------------------------------------------------------------- the job


@dataclass
class SynthResult:
    """What `synthesize` did.

    Attributes:
        out: the chat-format JSONL of accepted tasks.
        rejects: the JSONL of rejected attempts with reasons.
        accepted: tasks in the output now (earlier runs included).
        new_accepted: tasks accepted by this call.
        new_rejected: attempts rejected by this call, per reason kind.
        attempts: attempts made so far (earlier runs included).
        resumed_from: attempts that were already done when this call started.
        stopped: why the job stopped (`"count reached"` or `"max attempts reached"`).
    """

    out: Path
    rejects: Path
    accepted: int = 0
    new_accepted: int = 0
    new_rejected: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    resumed_from: int = 0
    stopped: str = ""


def _load_done(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL this job wrote; a torn last line (a killed job) is cut off the file."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    rows, offset = [], 0
    for index, line in enumerate(lines):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:  # invalid JSON or UTF-8
            if index == len(lines) - 1:  # the unterminated last line: torn by a kill
                with open(path, "r+b") as f:
                    f.truncate(start)
                return rows
            raise DataError(
                f"{path}:{index + 1}: not valid JSON; the file is written by tunewise — "
                "fix or delete that line, or choose a new --out."
            ) from None
    if raw and not raw.endswith(b"\n"):
        with open(path, "ab") as f:
            f.write(b"\n")
    return rows


def synthesize(
    out: str | Path,
    generator: Generator,
    *,
    seeds: Sequence[Seed] | None = None,
    count: int = 20,
    shots: int = 3,
    machine_shots: int = 1,
    rouge_threshold: float = 0.7,
    dedup_threshold: float = 0.7,
    min_words: int = 3,
    max_words: int = 150,
    batch_size: int = 4,
    max_attempts: int | None = None,
    seed: int = 0,
    model_name: str | None = None,
    show_progress: bool | None = None,
) -> SynthResult:
    """Generate `count` filtered tasks with answers into `out` (JSONL), resuming earlier work there.

    Args:
        out: the output JSONL; existing accepted rows count toward `count`.
        generator: conversations in, replies out (`ModelGenerator` for a real model). When it has
            a `reseed(int)` method, it is reseeded at each batch by the batch's first attempt.
        seeds: the seed tasks; tunewise's own when None.
        count: accepted tasks wanted in `out` in total.
        shots: example tasks in each prompt.
        machine_shots: of which at most this many are accepted synthetic tasks.
        rouge_threshold, dedup_threshold, min_words, max_words: the filter (`TaskFilter`).
        batch_size: attempts per generation batch (and per write).
        max_attempts: stop after this many attempts in total; `10 * count` when None.
        seed: the seed for shot sampling and generation.
        model_name: recorded in the provenance.
        show_progress: a progress bar; on when stderr is a terminal if None.

    Returns:
        A `SynthResult`.
    """
    out = Path(out)
    if not out.name.endswith(".jsonl"):
        raise TunewiseError(f"--out {out}: synthetic data is written as chat JSONL; use a .jsonl name")
    if count < 1 or shots < 1 or batch_size < 1:
        raise TunewiseError("--count, --shots and --batch-size must be at least 1")
    seeds = list(seeds) if seeds is not None else load_seeds()
    if not seeds:
        raise TunewiseError("no seed tasks: give a seeds file with at least one task (--seeds)")
    max_attempts = max_attempts if max_attempts is not None else 10 * count
    rejects = rejects_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    accepted = _load_done(out)
    rejected = _load_done(rejects)
    done = [r.get("provenance", {}).get("attempt") for r in accepted] + [r.get("attempt") for r in rejected]
    if any(not isinstance(a, int) for a in done):
        raise DataError(
            f"{out}: holds rows without provenance.attempt, so it was not written by "
            "`tunewise data synth`; choose a new --out file."
        )
    attempt = max(done, default=-1) + 1
    result = SynthResult(out=out, rejects=rejects, resumed_from=attempt, accepted=len(accepted))

    task_filter = TaskFilter(
        [(s.source, s.instruction) for s in seeds],
        rouge_threshold=rouge_threshold,
        dedup_threshold=dedup_threshold,
        min_words=min_words,
        max_words=max_words,
    )
    machine: list[tuple[str, str]] = []
    for row in accepted:
        name = f"synthetic attempt {row['provenance']['attempt']}"
        task = row["messages"][0]["content"]
        task_filter.add(name, task)
        machine.append((name, task))

    bar = progress(total=count, desc="synth", enabled=show_progress)
    bar.update(min(len(accepted), count))
    reseed = getattr(generator, "reseed", None)
    while len(accepted) < count and attempt < max_attempts:
        size = min(batch_size, count - len(accepted), max_attempts - attempt)
        numbers = list(range(attempt, attempt + size))
        attempt += size
        prompts: list[list[dict[str, str]]] = []
        shot_lists: list[list[str]] = []
        for a in numbers:
            picked = _shots(random.Random(f"{seed}|{a}"), seeds, machine, shots, machine_shots)
            shot_lists.append([name for name, _ in picked])
            examples = "\n".join(f"Task {j}: {' '.join(text.split())}" for j, (_, text) in enumerate(picked, 1))
            prompts.append([{"role": "user", "content": _PROMPT.format(examples=examples)}])
        if reseed is not None:
            reseed(seed * 1_000_003 + numbers[0])
        tasks = [_parse_task(r) for r in _call(generator, prompts)]

        new_rejects: list[dict[str, Any]] = []
        survivors: list[tuple[int, str, dict[str, Any], list[str]]] = []
        for a, task, shot_names in zip(numbers, tasks, shot_lists):
            reason, scores = task_filter.check(task)
            if reason:
                new_rejects.append({"attempt": a, "stage": "task", "reason": reason, "task": task, **scores})
                continue
            # Later candidates of this batch are compared with this one too.
            task_filter.add(f"synthetic attempt {a}", task)
            survivors.append((a, task, scores, shot_names))
        answers = _call(generator, [[{"role": "user", "content": t}] for _, t, _, _ in survivors]) if survivors else []
        new_rows: list[dict[str, Any]] = []
        for (a, task, scores, shot_names), answer in zip(survivors, answers):
            answer = answer.strip()
            if not answer:
                new_rejects.append(
                    {"attempt": a, "stage": "answer", "reason": "the model gave no answer", "task": task, **scores}
                )
                continue
            new_rows.append(
                {
                    "messages": [{"role": "user", "content": task}, {"role": "assistant", "content": answer}],
                    "provenance": {
                        "op": "self_instruct",
                        "model": model_name,
                        "seed": seed,
                        "attempt": a,
                        "shots": shot_names,
                        **scores,
                    },
                }
            )
            machine.append((f"synthetic attempt {a}", task))
        append_jsonl(out, new_rows)
        append_jsonl(rejects, sorted(new_rejects, key=lambda r: r["attempt"]))
        accepted += new_rows
        result.new_accepted += len(new_rows)
        for r in new_rejects:
            kind = r["reason"].split(" ")[0] if r["stage"] == "task" else "no answer"
            kind = {
                "too": r["reason"].split(":")[0],
                "near": "near duplicate",
                "exact": "exact duplicate",
                "ROUGE-L": "ROUGE-L",
                "asks": "undoable task",
            }.get(kind, kind)
            result.new_rejected[kind] = result.new_rejected.get(kind, 0) + 1
        bar.update(len(new_rows))
        bar.set_postfix(attempts=attempt, rejected=sum(result.new_rejected.values()))
    bar.close()
    result.accepted, result.attempts = len(accepted), attempt
    result.stopped = "count reached" if len(accepted) >= count else "max attempts reached"
    return result


def _call(generator: Generator, conversations: list[list[dict[str, str]]]) -> list[str]:
    replies = generator(conversations)
    if len(replies) != len(conversations):
        raise TunewiseError(f"the generator returned {len(replies)} replies for {len(conversations)} prompts")
    return list(replies)
