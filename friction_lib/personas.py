"""The six personas, their relay, the synthesis step, and the seeds that start each record.

Everything a workshop attendee may want to change is a text file, not code:

- `data/personas/<persona>.yaml`: one file per persona with `style`, `pattern`, `system` (the persona's
  system prompt), `prompt` (the user turn: the question and the earlier thoughts) and `max_tokens`;
- `data/personas/synthesis.yaml`: the seed-question prompt, the final-answer system prompt and user turn,
  and per friction type its `focus`, `seed_hint`, `instruction` and friction-moment `markers`;
- `data/seeds/<friction_type>.txt`: curated seed questions; `data/seeds/categories.txt` and
  `data/seeds/emotions.txt`: the category x emotion sampler.

The relay: the personas think in `schema.PERSONAS` order (problem_framer ... synthesizer); each sees the
question and every thought before it. The persona's role goes in the system prompt and the question in the
user turn, because small models answer a user turn far better than they follow a meta-prompt about one. Then the synthesis step writes the final answer with the
instruction of the record's friction type. `run_relay` does this through any `Complete` callable
(`generate.py` passes one backed by an OpenAI-compatible endpoint), so this module never talks to a server.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.files import read_yaml_mapping
from friction_lib.schema import FRICTION_TYPES, PERSONAS

# (system, prompt, max_tokens) -> the model's text. Generation fails loudly through exceptions.
Complete = Callable[[str, str, int], str]

PERSONA_PLACEHOLDERS = ("title", "style", "pattern", "focus", "question", "previous_thoughts")
SEED_PLACEHOLDERS = ("category", "emotion", "seed_hint")
ANSWER_PLACEHOLDERS = ("question", "thoughts", "instruction")
SEED_SOURCES = ("both", "curated", "sampled")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class GenerationFailure(Exception):
    """One record could not be made (unusable model text); the generator logs it and moves on."""

    def __init__(self, stage: str, reason: str, text: str = ""):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.text = text
        self.calls = 0  # model calls made for the seed before it failed (set by run_relay)


# --------------------------------------------------------------------------- files


def default_data_dir() -> Path:
    """`data/` of the repository (works from any working directory, notebooks included)."""
    from friction_lib.models import repo_root

    root = repo_root()
    return root / "data" if root else Path("data")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FrictionError(
            f"{path}: file not found. Restore it from git, or point --personas at your folder."
        )
    return read_yaml_mapping(path)


def _text(data: dict[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FrictionError(f"{path}: '{key}' is missing or empty; give it some text.")
    return value.strip()


def _check_placeholders(template: str, allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in allowed})
    if unknown:
        names = ", ".join("{" + name + "}" for name in unknown)
        raise FrictionError(
            f"{where}: unknown placeholder(s) {names}; allowed: {', '.join('{' + a + '}' for a in allowed)}."
        )


def fill(template: str, values: dict[str, str]) -> str:
    """Replace `{name}` for the names in `values`, in one pass (inserted text is never re-scanned)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file, without `#` comment lines."""
    if not path.is_file():
        raise FrictionError(f"{path}: file not found. Restore it from git, or point --seeds at your folder.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise FrictionError(
            f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8."
        ) from None
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


# --------------------------------------------------------------------------- personas


@dataclass(frozen=True)
class Persona:
    """One persona: its own system prompt (`system`) and the user turn it is shown (`prompt`)."""

    name: str
    title: str
    style: str
    pattern: str
    system: str
    prompt: str
    max_tokens: int
    path: Path

    def render(self, question: str, previous_thoughts: str, focus: str) -> tuple[str, str]:
        """(system, user) for this persona's call."""
        values = {
            "title": self.title,
            "style": self.style,
            "pattern": self.pattern,
            "question": question,
            "previous_thoughts": previous_thoughts,
            "focus": focus,
        }
        return fill(self.system, values), fill(self.prompt, values)


def load_persona(path: Path) -> Persona:
    data = _read_yaml(path)
    name = _text(data, "name", path)
    if name not in PERSONAS:
        raise FrictionError(f"{path}: unknown persona name {name!r}; expected one of: {', '.join(PERSONAS)}.")
    system = _text(data, "system", path)
    prompt = _text(data, "prompt", path)
    _check_placeholders(system, PERSONA_PLACEHOLDERS, f"{path}: system")
    _check_placeholders(prompt, PERSONA_PLACEHOLDERS, f"{path}: prompt")
    max_tokens = data.get("max_tokens", 90)
    if not isinstance(max_tokens, int) or not 8 <= max_tokens <= 2048:
        raise FrictionError(f"{path}: max_tokens must be a whole number from 8 to 2048, got {max_tokens!r}.")
    return Persona(
        name=name,
        title=str(data.get("title") or name.replace("_", " ").title()),
        style=_text(data, "style", path),
        pattern=_text(data, "pattern", path),
        system=system,
        prompt=prompt,
        max_tokens=max_tokens,
        path=path,
    )


def load_personas(directory: str | Path | None = None) -> list[Persona]:
    """The six personas from `<directory>/<name>.yaml`, in relay order."""
    folder = Path(directory) if directory else default_data_dir() / "personas"
    if not folder.is_dir():
        raise FrictionError(
            f"{folder}: persona folder not found. Pass --personas DIR (default data/personas)."
        )
    personas = []
    for name in PERSONAS:
        path = folder / f"{name}.yaml"
        persona = load_persona(path)
        if persona.name != name:
            raise FrictionError(f"{path}: 'name' is {persona.name!r} but the file is for {name!r}.")
        personas.append(persona)
    return personas


# --------------------------------------------------------------------------- synthesis


@dataclass(frozen=True)
class FrictionSpec:
    """What one friction type asks of the personas, the seed sampler and the final answer."""

    focus: str
    seed_hint: str
    instruction: str
    markers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Synthesis:
    system: str
    seed_prompt: str
    seed_max_tokens: int
    answer_system: str
    answer_prompt: str
    answer_max_tokens: int
    types: dict[str, FrictionSpec]
    uncertainty_phrases: tuple[str, ...] = ()
    path: Path = field(default=Path("synthesis.yaml"))

    def spec(self, friction_type: str) -> FrictionSpec:
        check_friction_type(friction_type)
        return self.types[friction_type]


def check_friction_type(friction_type: str) -> None:
    if friction_type not in FRICTION_TYPES:
        raise FrictionError(
            f"Unknown friction type {friction_type!r}; use one of: {', '.join(FRICTION_TYPES)}."
        )


def _friction_specs(raw_types: dict[str, Any], path: Path) -> dict[str, FrictionSpec]:
    """synthesis.yaml's `friction_types`: one entry per friction type, none unknown."""
    missing = [t for t in FRICTION_TYPES if t not in raw_types]
    if missing:
        raise FrictionError(
            f"{path}: friction_types lacks {', '.join(missing)}; each friction type needs an entry."
        )
    unknown = [t for t in raw_types if t not in FRICTION_TYPES]
    if unknown:
        raise FrictionError(
            f"{path}: unknown friction type(s) {', '.join(unknown)}; valid: {', '.join(FRICTION_TYPES)}."
        )
    types = {}
    for name in FRICTION_TYPES:
        entry = raw_types[name]
        where = Path(f"{path} (friction_types.{name})")
        if not isinstance(entry, dict):
            raise FrictionError(f"{where}: expected focus, seed_hint, instruction and markers.")
        markers = entry.get("markers") or []
        if not isinstance(markers, list) or not all(isinstance(m, str) and m.strip() for m in markers):
            raise FrictionError(f'{where}: markers must be a list of phrases, e.g. ["actually", "myth"].')
        types[name] = FrictionSpec(
            focus=_text(entry, "focus", where),
            seed_hint=_text(entry, "seed_hint", where),
            instruction=_text(entry, "instruction", where),
            markers=tuple(m.strip() for m in markers),
        )
    return types


def load_synthesis(directory: str | Path | None = None) -> Synthesis:
    """`<directory>/synthesis.yaml`: the system prompt, seed and answer prompts, and one entry per type."""
    path = (Path(directory) if directory else default_data_dir() / "personas") / "synthesis.yaml"
    data = _read_yaml(path)
    seed = data.get("seed_question") or {}
    answer = data.get("final_answer") or {}
    if not isinstance(seed, dict) or not isinstance(answer, dict):
        raise FrictionError(f"{path}: 'seed_question' and 'final_answer' must be mappings with a 'prompt'.")
    seed_prompt = _text(seed, "prompt", path)
    answer_system = _text(answer, "system", path)
    answer_prompt = _text(answer, "prompt", path)
    _check_placeholders(seed_prompt, SEED_PLACEHOLDERS, f"{path}: seed_question.prompt")
    _check_placeholders(answer_system, ANSWER_PLACEHOLDERS, f"{path}: final_answer.system")
    _check_placeholders(answer_prompt, ANSWER_PLACEHOLDERS, f"{path}: final_answer.prompt")
    types = _friction_specs(data.get("friction_types") or {}, path)
    phrases = data.get("uncertainty_phrases") or []
    return Synthesis(
        system=_text(data, "system", path),
        seed_prompt=seed_prompt,
        seed_max_tokens=int(seed.get("max_tokens", 60)),
        answer_system=answer_system,
        answer_prompt=answer_prompt,
        answer_max_tokens=int(answer.get("max_tokens", 180)),
        types=types,
        uncertainty_phrases=tuple(str(p).strip() for p in phrases if str(p).strip()),
        path=path,
    )


# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """Where one record starts: a curated question, or a (category, emotion) pair to ask the model about."""

    friction_type: str
    source: str  # "curated" | "sampled"
    question: str | None = None
    category: str | None = None
    emotion: str | None = None

    @property
    def key(self) -> str:
        if self.source == "curated":
            return f"curated|{self.friction_type}|{' '.join((self.question or '').lower().split())}"
        return f"sampled|{self.friction_type}|{self.category}|{self.emotion}"

    @property
    def record_id(self) -> str:
        """Derived from the seed alone, so a rerun recognises a seed it already turned into a record."""
        digest = hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:12]
        return f"gen-{self.friction_type}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


def curated_seeds(friction_type: str, seeds_dir: str | Path | None = None) -> list[str]:
    check_friction_type(friction_type)
    folder = Path(seeds_dir) if seeds_dir else default_data_dir() / "seeds"
    return read_lines(folder / f"{friction_type}.txt")


def sampler_lists(seeds_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """(categories, emotions) for the category x emotion seed-question sampler."""
    folder = Path(seeds_dir) if seeds_dir else default_data_dir() / "seeds"
    return read_lines(folder / "categories.txt"), read_lines(folder / "emotions.txt")


def seed_stream(
    friction_type: str, seeds_dir: str | Path | None = None, source: str = "both", seed: int = 0
) -> list[Seed]:
    """Every seed for a friction type in a fixed order (curated first, then sampled pairs).

    The order depends only on the files and `seed`, never on how many are asked for, so the first
    N seeds of a run are the first N of any later run with the same seed: that is what makes resume work.
    """
    check_friction_type(friction_type)
    if source not in SEED_SOURCES:
        raise FrictionError(f"Unknown seed source {source!r}; use one of: {', '.join(SEED_SOURCES)}.")
    rng = random.Random(f"{seed}:{friction_type}")
    stream: list[Seed] = []
    if source in ("both", "curated"):
        questions = list(dict.fromkeys(curated_seeds(friction_type, seeds_dir)))
        rng.shuffle(questions)
        stream += [Seed(friction_type, "curated", question=q) for q in questions]
    if source in ("both", "sampled"):
        categories, emotions = sampler_lists(seeds_dir)
        pairs = [(c, e) for c in dict.fromkeys(categories) for e in dict.fromkeys(emotions)]
        rng.shuffle(pairs)
        stream += [Seed(friction_type, "sampled", category=c, emotion=e) for c, e in pairs]
    return stream


def take_seeds(
    friction_type: str, n: int, seeds_dir: str | Path | None = None, source: str = "both", seed: int = 0
) -> list[Seed]:
    """The first `n` seeds of `seed_stream`; a clear error if there are fewer."""
    stream = seed_stream(friction_type, seeds_dir, source, seed)
    if n > len(stream):
        folder = Path(seeds_dir) if seeds_dir else default_data_dir() / "seeds"
        raise FrictionError(
            f"Asked for {n} {friction_type} seeds but only {len(stream)} exist with --seeds {source}. "
            f"Add questions to {folder / friction_type}.txt or categories/emotions, or use --seeds both."
        )
    return stream[:n]


# --------------------------------------------------------------------------- cleaning model text


_LABEL = re.compile(
    r"^[\s*_#>\-]*(?:my\s+|the\s+)?(?:thoughts?|answer|reply|response|question|assistant|user|final answer|"
    r"thoughts? so far|so far|problem framer|memory activator|mechanism explorer|perspective generator|"
    r"limitation acknowledger|synthesizer)\s*[*_]*\s*:\s*",
    flags=re.IGNORECASE,
)
# "The user asked: "<the question>"" and the like: small models often echo the prompt before thinking.
_ECHO = re.compile(
    r"^(?:the\s+)?user(?:'s)?(?:\s+(?:question|asked|asks|says|said|wants to know|wrote))*"
    r"(?:\s+(?:was|is))?\s*[:,]?\s*",
    flags=re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_ENDS = re.compile(r"[.!?][\"')\]]*$")


def clean_text(text: str) -> str:
    """Join the lines; strip wrapping quotes, markdown emphasis and a leading label such as `Thought:`."""
    text = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    for _ in range(2):
        text = _LABEL.sub("", text, count=1).strip()
    text = text.strip("*_").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text.strip("\u201c\u201d").strip()


def strip_echo(text: str, question: str) -> str:
    """Remove a leading echo of the user's question (`The user asked: "..."`), then any label after it."""
    found = _ECHO.match(text)
    rest = text[found.end() :] if found and found.end() > 0 else text
    quoted = rest[:1] in "\"'\u201c"
    head = rest.lstrip("\"'\u201c ")
    from rapidfuzz import fuzz

    echoes = fuzz.ratio(head[: len(question)].lower(), question.lower()) >= 70
    if not echoes or not (quoted or rest is not text):
        return text
    window = head[: len(question) + 20]
    ends = [at for at in (window.find("?"), window.find('"'), window.find("\u201d")) if at >= 0]
    rest = head[min(ends) + 1 :] if ends else head[len(question) :]
    return clean_text(rest.lstrip("\"'\u201d .,:"))


def trim_sentences(text: str, max_sentences: int) -> str:
    """At most `max_sentences` sentences, dropping a last half sentence cut off by the token limit."""
    parts = [part.strip() for part in _SENTENCE_END.split(text.strip()) if part.strip()]
    if len(parts) > 1 and not _ENDS.search(parts[-1]):
        parts = parts[:-1]
    return " ".join(parts[:max_sentences])


def clean_question(text: str) -> str:
    """The first usable line of a generated seed question."""
    for line in text.strip().splitlines():
        line = clean_text(line)
        if line:
            return trim_sentences(line, 2)
    return ""


# --------------------------------------------------------------------------- the relay


def labelled_thoughts(thoughts: list[tuple[str, str]]) -> str:
    """`- Title: thought` lines, or `(none yet)`: how the relay shows earlier thoughts to the next persona."""
    return "\n".join(f"- {title}: {text}" for title, text in thoughts) or "(none yet)"


def relay_prompt(
    persona: Persona, question: str, thoughts: list[tuple[str, str]], focus: str
) -> tuple[str, str]:
    """(system, user) for one persona: its role, then the question and every earlier thought, labelled."""
    return persona.render(question=question, previous_thoughts=labelled_thoughts(thoughts), focus=focus)


def seed_question_prompt(synthesis: Synthesis, seed: Seed) -> str:
    spec = synthesis.spec(seed.friction_type)
    return fill(
        synthesis.seed_prompt,
        {"category": seed.category or "", "emotion": seed.emotion or "", "seed_hint": spec.seed_hint},
    )


def final_answer_prompt(
    synthesis: Synthesis, friction_type: str, question: str, thoughts: list[tuple[str, str]]
) -> tuple[str, str]:
    """(system, user) for the synthesis call: the type's instruction, the question, the labelled thoughts."""
    spec = synthesis.spec(friction_type)
    values = {"question": question, "thoughts": labelled_thoughts(thoughts), "instruction": spec.instruction}
    return fill(synthesis.answer_system, values), fill(synthesis.answer_prompt, values)


def friction_moments(
    text: str, friction_type: str, synthesis: Synthesis, limit: int = 2
) -> list[dict[str, str]]:
    """Marker phrases of the friction type found in a thought, as `{"type", "marker"}` (none for `none`)."""
    if friction_type == "none":
        return []
    moments = []
    for marker in synthesis.spec(friction_type).markers:
        found = re.search(rf"(?<!\w){re.escape(marker)}(?!\w)", text, flags=re.IGNORECASE)
        if found:
            moments.append({"type": friction_type, "marker": found.group(0)})
        if len(moments) >= limit:
            break
    return moments


def inject_uncertainty(
    agents: list[dict[str, Any]],
    friction_type: str,
    phrases: tuple[str, ...],
    probability: float,
    rng: random.Random,
) -> bool:
    """With `probability`, open one thought (not the synthesizer's) with an uncertainty phrase.

    Off by default (probability 0). `none` controls are left alone, so they stay plain helpful answers.
    Returns True when a phrase was injected; the phrase is recorded as an `uncertainty` friction moment.
    """
    if probability <= 0 or friction_type == "none" or not phrases or rng.random() >= probability:
        return False
    candidates = [a for a in agents if a["agent_type"] != "synthesizer"] or agents
    agent = rng.choice(candidates)
    phrase = rng.choice(phrases)
    agent["thought_stream"] = f"{phrase} {agent['thought_stream']}"
    agent["friction_moments"] = [{"type": "uncertainty", "marker": phrase}, *agent["friction_moments"]][:3]
    return True


REPEAT_RATIO = 90.0  # rapidfuzz ratio at which a thought counts as a copy of an earlier one


def _usable(stage: str, raw: str, cleaned: str, min_words: int, earlier: Sequence[str] = ()) -> str:
    from rapidfuzz import fuzz

    if not raw or not raw.strip():
        raise GenerationFailure(stage, "empty model text", raw or "")
    if len(cleaned.split()) < min_words:
        raise GenerationFailure(stage, f"too little usable text (fewer than {min_words} words)", raw)
    for before in earlier:
        if fuzz.ratio(cleaned.lower(), before.lower()) >= REPEAT_RATIO:
            raise GenerationFailure(stage, "repeats an earlier thought", raw)
    return cleaned


@dataclass
class RelayResult:
    question: str
    agents: list[dict[str, Any]]
    final_answer: str
    prompts: int  # model calls made


def run_relay(
    seed: Seed,
    complete: Complete,
    personas: list[Persona],
    synthesis: Synthesis,
    uncertainty_prob: float = 0.0,
    rng: random.Random | None = None,
    max_thought_sentences: int = 3,
) -> RelayResult:
    """Turn one seed into a question, six thoughts in relay order, and a final answer.

    Raises `GenerationFailure` (with `.calls`, the model calls made) when a step returns unusable text:
    empty, only a word or two, or a copy of an earlier thought.
    """
    rng = rng or random.Random(seed.record_id)
    spec = synthesis.spec(seed.friction_type)
    calls = 0

    def call(system: str, prompt: str, max_tokens: int) -> str:
        nonlocal calls
        calls += 1
        return complete(system, prompt, max_tokens)

    try:
        if seed.question:
            question = seed.question
        else:
            raw = call(synthesis.system, seed_question_prompt(synthesis, seed), synthesis.seed_max_tokens)
            question = _usable("seed_question", raw, clean_question(raw or ""), 4)
        titled: list[tuple[str, str]] = []
        agents: list[dict[str, Any]] = []
        for persona in personas:
            raw = call(*relay_prompt(persona, question, titled, spec.focus), persona.max_tokens)
            cleaned = trim_sentences(strip_echo(clean_text(raw or ""), question), max_thought_sentences)
            thought = _usable(persona.name, raw, cleaned, 3, [text for _, text in titled])
            titled.append((persona.title, thought))
            moments = friction_moments(thought, seed.friction_type, synthesis)
            agents.append(
                {"agent_type": persona.name, "thought_stream": thought, "friction_moments": moments}
            )
        inject_uncertainty(agents, seed.friction_type, synthesis.uncertainty_phrases, uncertainty_prob, rng)
        final_thoughts = [(p.title, a["thought_stream"]) for p, a in zip(personas, agents, strict=True)]
        system, prompt = final_answer_prompt(synthesis, seed.friction_type, question, final_thoughts)
        raw = call(system, prompt, synthesis.answer_max_tokens)
        cleaned = trim_sentences(strip_echo(clean_text(raw or ""), question), 6)
        answer = _usable("final_answer", raw, cleaned, 3, [a["thought_stream"] for a in agents])
    except GenerationFailure as failure:
        failure.calls = calls
        raise
    return RelayResult(question=question, agents=agents, final_answer=answer, prompts=calls)
