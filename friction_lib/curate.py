"""Curation: keep only records a small model should learn from, and say why each other one went.

`friction data curate IN --out OUT` runs, per record, in this order:

1. schema validation (lenient load: every bad line is reported as `file:line: reason`);
2. content checks: a question of at most `MAX_QUESTION_CHARS` characters, reasoning and answer present, no
   error text (API errors, tracebacks, rate limits), no boilerplate AI disclaimer, no leftover template
   placeholders, no stray `<think>` tags or special tokens, length bounds on the final answer and on each
   thought;
3. contamination: the user_input must not equal or nearly equal any eval prompt in `data/`;
4. exact duplicates (normalised user_input), then near duplicates (rapidfuzz `token_set_ratio`).

A record removed at one step is not used to judge later records, so a bad copy never knocks out a
good original. `curate()` is the pure function; `curate_file()` adds loading, printing and the atomic
write; `plot_dataset()` draws records per friction_type and length histograms per agent.
"""

from __future__ import annotations

import bisect
import glob
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from friction_lib.errors import FrictionError
from friction_lib.schema import (
    FRICTION_TYPES,
    PERSONAS,
    FrictionRecord,
    count_by_type,
    jsonl_lines,
    load_jsonl,
    write_jsonl,
)

DEFAULT_EVAL_GLOBS = ("data/eval/*.jsonl", "data/demo_prompts.jsonl")
NEAR_THRESHOLD = 90.0
# Near-duplicate candidates must have normalised lengths within this ratio. token_set_ratio scores 100
# whenever one question's words are a subset of the other's ("What is 2+2?" vs "What is 2+2 in binary?"),
# so comparing only similar lengths avoids those false matches; it is also the blocking key that
# keeps the comparison count small.
LENGTH_RATIO = 0.75

# The longest question (user_input) a record may have. About 250 tokens: with the template (about 30) and the
# longest reasoning and answer in the shipped data (about 160), it fits the cpu profile's 512-token training
# context with room to spare; the longest shipped question has 203 characters.
MAX_QUESTION_CHARS = 1000

# Removal kinds, in the order the checks run. Every removal reason starts with one of these and ": ".
REASON_KINDS = (
    "invalid",
    "question-too-long",
    "missing-reasoning",
    "missing-answer",
    "error-text",
    "boilerplate",
    "placeholder",
    "think-tags",
    "too-short",
    "too-long",
    "contamination-exact",
    "contamination-near",
    "exact-duplicate",
    "near-duplicate",
)

# Text that only appears when an API call failed and its error was saved as content. Either a
# signature specific to API error dumps (anywhere), or a generic error word at the very start of the
# field. A legitimate refusal ("I can't help with that"), or an answer that explains HTTP 429 or
# "rate limit exceeded" to a user who asked about it, does not match.
ERROR_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        (
            "starts like an error message",
            r"^\W{0,3}(?:error|exception|fatal|failed|failure)\b\s*(?:code\s*\d*)?\s*[:\]\-]",
        ),
        (
            "starts like an error message",
            r"^\W{0,3}(?:connection error|request failed|rate limit|too many requests|"
            r"internal server error|service unavailable|bad gateway|gateway timeout|"
            r"(?:http )?(?:429|50[0-4])\b)",
        ),
        ("API error code", r"\berror code:\s*\d{3}\b"),
        ("API error payload", r"\{\s*['\"]error['\"]\s*:"),
        (
            "API rate-limit message",
            r"\brate limit reached for\b|\binsufficient_quota\b|\bexceeded your current quota\b",
        ),
        ("API key error", r"\bincorrect api key provided\b|\binvalid_api_key\b"),
        ("context-length error", r"\bmaximum context length is \d+|\bcontext_length_exceeded\b"),
        ("Python traceback", r"traceback \(most recent call last\)"),
        (
            "client exception name",
            r"\b(?:APIConnectionError|APITimeoutError|RateLimitError|APIStatusError)\b",
        ),
    )
)
BOILERPLATE = re.compile(
    r"\bas an? (?:ai|artificial intelligence)(?: language)? model\b|\bas a large language model\b"
    r"|\bi am (?:just )?an ai language model\b",
    re.IGNORECASE,
)
# Leftover template placeholders. `{name}` only outside `code`, so an f-string example stays legal.
PLACEHOLDER_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\{\{.*?\}\}|\{%.*?%\}"),
    re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}"),
    re.compile(
        r"<\s*(?:placeholder|insert[^<>]{0,40}|your [^<>]{1,30}|todo|tbd|name|answer|question)\s*>", re.I
    ),
    re.compile(r"\[\s*(?:placeholder|insert[^\]]{0,40}|your [^\]]{1,30}|todo|tbd)\s*\]", re.I),
    re.compile(r"\blorem ipsum\b", re.I),
)
THINK_TAGS = re.compile(r"</?think>|<\|im_(?:start|end)\|>|<\|endoftext\|>|<｜[^｜]{1,30}｜>", re.I)
_CODE_SPAN = re.compile(r"```.*?```|`[^`\n]*`", re.S)


@dataclass(frozen=True)
class LengthBounds:
    """Word-count bounds (the final answer should be 2 to 6 sentences; thoughts short), and the question's
    characters."""

    answer_words: tuple[int, int] = (4, 150)
    thought_words: tuple[int, int] = (2, 100)
    reasoning_words: tuple[int, int] = (6, 400)
    question_chars: int = MAX_QUESTION_CHARS


DEFAULT_BOUNDS = LengthBounds()


def words(text: str) -> int:
    return len(text.split())


def normalise(text: str) -> str:
    """Lower case, NFKC, punctuation to spaces, one space between words: what dedup compares."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def text_problems(text: str) -> list[str]:
    """Error text, boilerplate, placeholders and stray tags in one piece of text (length not checked)."""
    problems = []
    label, found = next(
        ((name, m) for name, pattern in ERROR_PATTERNS if (m := pattern.search(text))), ("", None)
    )
    if found:
        problems.append(f"error-text: {label} ({found.group(0)[:40]!r})")
    found = BOILERPLATE.search(text)
    if found:
        problems.append(f"boilerplate: {found.group(0)!r}")
    prose = _CODE_SPAN.sub(" ", text)
    found = next((m for pattern in PLACEHOLDER_PATTERNS if (m := pattern.search(prose))), None)
    if found:
        problems.append(f"placeholder: {found.group(0)[:40]!r}")
    found = THINK_TAGS.search(text)
    if found:
        problems.append(f"think-tags: {found.group(0)!r}")
    return problems


def record_problems(record: FrictionRecord, bounds: LengthBounds | None = DEFAULT_BOUNDS) -> list[str]:
    """Everything wrong with one (schema-valid) record's content; [] when it is fine.

    With `bounds=None` lengths are not checked (the generator uses this: lengths are curation's call).
    """
    problems: list[str] = []
    if bounds is not None and len(record.user_input) > bounds.question_chars:
        problems.append(
            f"question-too-long: user_input has {len(record.user_input):,} characters "
            f"(maximum {bounds.question_chars:,})"
        )
    thoughts = [agent.thought_stream for agent in record.agents]
    if not any(re.search(r"\w", t) for t in thoughts):
        problems.append("missing-reasoning: no thought has any words")
    if not re.search(r"\w", record.final_answer):
        problems.append("missing-answer: the final answer has no words")
    fields = [("user_input", record.user_input), ("final_answer", record.final_answer)]
    fields += [(agent.agent_type, agent.thought_stream) for agent in record.agents]
    for name, text in fields:
        problems += [f"{p} in {name}" for p in text_problems(text)]
    if bounds is not None:
        problems += _word_count_problems(record, bounds)
    return problems


def _word_count_problems(record: FrictionRecord, bounds: LengthBounds) -> list[str]:
    """The answer, each thought and the reasoning in all, against their (minimum, maximum) numbers of words."""
    counts = [("final answer", words(record.final_answer), bounds.answer_words, "")]
    counts += [
        (f"{agent.agent_type} thought", words(agent.thought_stream), bounds.thought_words, "")
        for agent in record.agents
    ]
    total = sum(words(agent.thought_stream) for agent in record.agents)
    counts.append(("the reasoning", total, bounds.reasoning_words, " in all"))
    problems = []
    for what, n, (low, high), in_all in counts:
        if n < low:
            problems.append(f"too-short: {what} has {n} words{in_all} (minimum {low})")
        elif n > high:
            problems.append(f"too-long: {what} has {n} words{in_all} (maximum {high})")
    return problems


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKDOWN_NOISE = re.compile(r"^\s*(#+\s*|[-*]\s+|\d+\.\s+)|\*\*|__", re.M)


def first_sentences(text: str, min_words: int = 35, max_words: int = 110) -> str | None:
    """The first sentences of a long answer (at least `min_words`, at most `max_words`), Markdown flattened;
    None if that leaves fewer than 12 words or no whole sentence. How CoCoNot's long answers become short
    preference sides (`friction data pairs`) and short helpful answers (data/build/make_benchmark_train.py)."""
    flat = " ".join(_MARKDOWN_NOISE.sub("", line).strip() for line in text.splitlines() if line.strip())
    kept: list[str] = []
    count = 0
    for sentence in _SENTENCE_END.split(flat):
        count += len(sentence.split())
        if count > max_words:
            break
        kept.append(sentence)
        if count >= min_words:
            break
    answer = " ".join(kept).strip()
    return answer if len(answer.split()) >= 12 and answer[-1:] in ".!?" else None


# --------------------------------------------------------------------------- eval prompts


@dataclass(frozen=True)
class EvalPrompt:
    id: str
    text: str
    file: str


def find_eval_files(
    patterns: Iterable[str] = DEFAULT_EVAL_GLOBS, base: str | Path | None = None
) -> list[Path]:
    """Files matching the patterns, relative to `base` (default: the working directory, then the repo)."""
    from friction_lib.models import repo_root

    repo = repo_root()
    bases = [Path(base)] if base else [Path.cwd(), *([repo] if repo else [])]
    for root in bases:
        found: list[Path] = []
        for pattern in patterns:
            full = pattern if Path(pattern).is_absolute() else str(root / pattern)
            found += [Path(p) for p in sorted(glob.glob(full))]
        if found:
            return list(dict.fromkeys(found))
    return []


def load_eval_prompts(files: Iterable[str | Path]) -> tuple[list[EvalPrompt], list[str]]:
    """Every `prompt` (or `user_input`) in the JSONL files; unreadable lines come back as `file:line: reason`."""
    prompts: list[EvalPrompt] = []
    problems: list[str] = []
    for file in files:
        path = Path(file)
        for number, obj, problem in jsonl_lines(path):
            if problem:
                problems.append(f"{path}:{number}: {problem}")
                continue
            text = obj.get("prompt") or obj.get("user_input") if isinstance(obj, dict) else None
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{path}:{number}: no 'prompt' text")
                continue
            prompts.append(EvalPrompt(str(obj.get("id", f"line{number}")), text, str(path)))
    return prompts, problems


# --------------------------------------------------------------------------- near-duplicate index


class NearIndex:
    """Normalised texts sorted by length; `match` compares only texts of similar length (the blocking)."""

    def __init__(self, threshold: float = NEAR_THRESHOLD, length_ratio: float = LENGTH_RATIO):
        self.threshold = threshold
        self.length_ratio = length_ratio
        self.lengths: list[int] = []
        self.texts: list[str] = []
        self.keys: list[str] = []
        self.exact: dict[str, str] = {}
        self.comparisons = 0

    def add(self, text: str, key: str) -> None:
        norm = normalise(text)
        self.exact.setdefault(norm, key)
        at = bisect.bisect(self.lengths, len(norm))
        self.lengths.insert(at, len(norm))
        self.texts.insert(at, norm)
        self.keys.insert(at, key)

    def exact_match(self, text: str) -> str | None:
        return self.exact.get(normalise(text))

    def match(self, text: str) -> tuple[str, float] | None:
        """(key, score) of the most similar stored text scoring at least the threshold, else None."""
        from rapidfuzz import fuzz, process

        norm = normalise(text)
        low = bisect.bisect_left(self.lengths, len(norm) * self.length_ratio)
        high = bisect.bisect_right(self.lengths, len(norm) / self.length_ratio)
        if low >= high:
            return None
        self.comparisons += high - low
        best = process.extractOne(
            norm,
            self.texts[low:high],
            scorer=fuzz.token_set_ratio,
            score_cutoff=self.threshold,
            processor=None,
        )
        if best is None:
            return None
        return self.keys[low + best[2]], float(best[1])


# --------------------------------------------------------------------------- curate


def curate(
    records: Sequence[FrictionRecord],
    eval_prompts: Sequence[EvalPrompt | str] = (),
    near_threshold: float = NEAR_THRESHOLD,
    bounds: LengthBounds | None = DEFAULT_BOUNDS,
) -> tuple[list[FrictionRecord], list[tuple[str, str]]]:
    """Filter records; returns (kept, removed) with removed as `(record_id, "kind: detail")`.

    The first of two duplicates is kept. Eval prompts may be `EvalPrompt`s or plain strings.
    """
    evals = NearIndex(near_threshold)
    for i, prompt in enumerate(eval_prompts):
        if isinstance(prompt, EvalPrompt):
            evals.add(prompt.text, f"{prompt.id} in {prompt.file}")
        else:
            evals.add(prompt, f"eval prompt {i}")
    seen = NearIndex(near_threshold)
    kept: list[FrictionRecord] = []
    removed: list[tuple[str, str]] = []
    for record in records:
        problems = record_problems(record, bounds)
        if problems:
            removed.append((record.id, "; ".join(problems)))
            continue
        reason = _match_reason(evals, record.user_input, _CONTAMINATION) or _match_reason(
            seen, record.user_input, _DUPLICATE
        )
        if reason:
            removed.append((record.id, reason))
            continue
        seen.add(record.user_input, record.id)
        kept.append(record)
    return kept, removed


# The reasons `curate` gives, as (exact-match prefix, near-match prefix): the match's id (and score) follow.
_CONTAMINATION = ("contamination-exact: same prompt as eval ", "contamination-near: like eval ")
_DUPLICATE = ("exact-duplicate: same user_input as ", "near-duplicate: like ")


def _match_reason(index: NearIndex, text: str, reasons: tuple[str, str]) -> str | None:
    """Why `text` is removed when `index` holds it: the exact-match reason and the id of the match, else the
    near-match reason, the id and the score; None when neither."""
    exact, near = reasons
    hit = index.exact_match(text)
    if hit:
        return f"{exact}{hit}"
    like = index.match(text)
    if like:
        return f"{near}{like[0]} (score {like[1]:.0f})"
    return None


def reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


@dataclass
class CurateStats:
    input_path: str
    output_path: str | None
    lines_in: int = 0
    kept: int = 0
    removed: list[tuple[str, str]] = field(default_factory=list)  # (record id or file:line, reason)
    eval_files: list[str] = field(default_factory=list)
    eval_prompts: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # kept records per friction_type
    seconds: float = 0.0

    @property
    def by_kind(self) -> dict[str, int]:
        counts = Counter(reason_kind(reason) for _, reason in self.removed)
        return {kind: counts[kind] for kind in REASON_KINDS if counts[kind]}


def curate_file(
    in_path: str | Path,
    out_path: str | Path | None,
    eval_globs: Sequence[str] = DEFAULT_EVAL_GLOBS,
    near_threshold: float = NEAR_THRESHOLD,
    bounds: LengthBounds | None = DEFAULT_BOUNDS,
    verbose: bool = True,
) -> tuple[list[FrictionRecord], CurateStats]:
    """Load leniently, curate against the eval prompts, write `out_path` atomically, print a report."""
    if out_path is not None and Path(out_path).is_dir():
        raise FrictionError(
            f"--out {out_path} is a folder; give a file, e.g. {Path(out_path) / 'curated.jsonl'}."
        )
    t0 = time.perf_counter()
    loaded = load_jsonl(in_path, strict=False)
    eval_files = find_eval_files(eval_globs)
    eval_prompts, eval_problems = load_eval_prompts(eval_files)
    kept, removed = curate(loaded.records, eval_prompts, near_threshold, bounds)
    invalid = [
        (problem.split(": ", 1)[0], "invalid: " + problem.split(": ", 1)[-1]) for problem in loaded.problems
    ]
    stats = CurateStats(
        input_path=str(in_path),
        output_path=str(out_path) if out_path else None,
        lines_in=len(loaded.records) + len(loaded.problems),
        kept=len(kept),
        removed=invalid + removed,
        eval_files=[str(f) for f in eval_files],
        eval_prompts=len(eval_prompts),
        counts=count_by_type(kept),
    )
    stats.seconds = time.perf_counter() - t0
    if verbose:
        print_report(stats, eval_problems)
    if out_path is not None:
        if not kept:
            raise FrictionError(
                f"Curation kept no records of {in_path}, so {out_path} was not written. See the reasons above."
            )
        write_jsonl(kept, out_path)
    return kept, stats


def print_report(stats: CurateStats, eval_problems: Sequence[str] = (), max_rows: int = 40) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if stats.eval_files:
        console.print(
            f"Contamination check against {stats.eval_prompts} eval prompts in {len(stats.eval_files)} file(s)."
        )
    else:
        console.print(
            "[yellow]No eval prompt files found (data/eval/*.jsonl, data/demo_prompts.jsonl): "
            "the contamination check compared against nothing. Pass --eval-glob.[/yellow]"
        )
    for problem in eval_problems[:10]:
        console.print(f"[yellow]eval file: {problem}[/yellow]")
    summary = Table(title=f"Curated {stats.input_path}: kept {stats.kept} of {stats.lines_in}")
    summary.add_column("removed because")
    summary.add_column("records", justify="right")
    for kind, count in stats.by_kind.items():
        summary.add_row(kind, str(count))
    summary.add_row("[bold]total removed", f"[bold]{len(stats.removed)}")
    console.print(summary)
    if stats.removed:
        detail = Table(title="Removed records")
        detail.add_column("record")
        detail.add_column("reason")
        for rid, reason in stats.removed[:max_rows]:
            detail.add_row(rid, reason)
        if len(stats.removed) > max_rows:
            detail.add_row("...", f"and {len(stats.removed) - max_rows} more")
        console.print(detail)
    counts = Table(title="Kept records per friction_type")
    counts.add_column("friction_type")
    counts.add_column("records", justify="right")
    counts.add_column("share", justify="right")
    for name, count in stats.counts.items():
        counts.add_row(name, str(count), f"{100 * count / max(stats.kept, 1):.1f}%")
    console.print(counts)
    where = f" -> {stats.output_path}" if stats.output_path else ""
    console.print(f"Kept {stats.kept}, removed {len(stats.removed)} in {stats.seconds:.1f} s{where}")


# --------------------------------------------------------------------------- plots


def plot_dataset(records: Sequence[FrictionRecord], path: str | Path, title: str = "") -> Path:
    """One PNG: records per friction_type, then word-count histograms per agent and for the answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    flat = axes.ravel()
    counts = count_by_type(records)
    flat[0].bar(list(counts), list(counts.values()), color="#4c72b0")
    flat[0].set_title("records per friction_type")
    flat[0].tick_params(axis="x", rotation=45)
    for ax, name in zip(flat[1:], [*PERSONAS, "final_answer"], strict=True):
        if name == "final_answer":
            lengths = [words(r.final_answer) for r in records]
        else:
            lengths = [words(a.thought_stream) for r in records for a in r.agents if a.agent_type == name]
        ax.hist(lengths, bins=20, color="#dd8452" if name == "final_answer" else "#55a868")
        ax.set_title(f"{name} (n={len(lengths)})")
        ax.set_xlabel("words")
    fig.suptitle(title or f"{len(records)} records")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- CLI


def cli_curate(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="friction data curate",
        description="Validate, filter and deduplicate a friction dataset; prints what it removed and why.",
    )
    parser.add_argument("input", help="JSONL file of friction records")
    parser.add_argument(
        "--out", required=True, help="where to write the kept records (atomic; may equal the input)"
    )
    parser.add_argument(
        "--eval-glob",
        action="append",
        help=f"eval prompt files to check contamination against (repeatable; default: {' and '.join(DEFAULT_EVAL_GLOBS)})",
    )
    parser.add_argument(
        "--near-threshold", type=float, default=NEAR_THRESHOLD, help="rapidfuzz token_set_ratio (0-100)"
    )
    parser.add_argument("--min-answer-words", type=int, default=DEFAULT_BOUNDS.answer_words[0])
    parser.add_argument("--max-answer-words", type=int, default=DEFAULT_BOUNDS.answer_words[1])
    parser.add_argument("--max-thought-words", type=int, default=DEFAULT_BOUNDS.thought_words[1])
    parser.add_argument(
        "--max-question-chars",
        type=int,
        default=MAX_QUESTION_CHARS,
        help=f"longest user_input kept (default {MAX_QUESTION_CHARS})",
    )
    parser.add_argument("--plot", help="also save records-per-type and length histograms to this PNG")
    args = parser.parse_args(argv)
    if not 0 < args.near_threshold <= 100:
        raise FrictionError(f"--near-threshold must be in (0, 100], got {args.near_threshold}.")
    bounds = LengthBounds(
        answer_words=(args.min_answer_words, args.max_answer_words),
        thought_words=(DEFAULT_BOUNDS.thought_words[0], args.max_thought_words),
        question_chars=args.max_question_chars,
    )
    kept, _ = curate_file(
        args.input, args.out, tuple(args.eval_glob or DEFAULT_EVAL_GLOBS), args.near_threshold, bounds
    )
    if args.plot:
        print(f"Plot: {plot_dataset(kept, args.plot)}")
    return 0


__all__ = [
    "DEFAULT_BOUNDS",
    "FRICTION_TYPES",
    "MAX_QUESTION_CHARS",
    "CurateStats",
    "EvalPrompt",
    "LengthBounds",
    "cli_curate",
    "curate",
    "curate_file",
    "find_eval_files",
    "first_sentences",
    "load_eval_prompts",
    "normalise",
    "plot_dataset",
    "record_problems",
    "text_problems",
]
