"""`friction generate`: the persona relay end to end against the real llama.cpp server, resume after a
real crash (SIGKILL), an endpoint that is down, a real HTTP server that answers 429/503 before 200
(backoff + retry through the real openai client), empty model text, and the validation path.

Tests marked CANNED use `responder=`, the generator's explicit opt-in that replaces the endpoint with
a function. They check the generator's own logic (validation, failures file, resume, concurrency
bound, relay order) deterministically; they do not claim anything about a model.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from friction_lib import cli
from friction_lib.curate import record_problems
from friction_lib.engines import free_port
from friction_lib.errors import FrictionError
from friction_lib.generate import failures_path, generate_records
from friction_lib.personas import load_personas, load_synthesis, seed_stream, take_seeds
from friction_lib.schema import FRICTION_TYPES, PERSONAS, load_jsonl, to_messages

GOOD_ANSWER = "That idea is a popular myth. The real picture is simpler, and here is what actually happens."
THOUGHTS = {  # one distinct thought per persona title (a repeated thought fails the relay)
    "Problem Framer": "I should check what this question takes for granted before I answer it.",
    "Memory Activator": "I remember this being a common myth that many people repeat without checking.",
    "Mechanism Explorer": "The actual mechanism is different from what the question assumes here.",
    "Perspective Generator": "From the user's side this sounds plausible, so I will be kind about it.",
    "Limitation Acknowledger": "I am fairly sure of the core fact, though details vary from case to case.",
    "Synthesizer": "I will correct the premise gently and then explain what really happens.",
}
GOOD_THOUGHT = THOUGHTS["Problem Framer"]


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def canned(
    answer: str = GOOD_ANSWER, thought: str | None = None, question: str = "Why do cats purr so loudly?"
):
    """CANNED responder (explicit opt-in): fixed text per stage, chosen from the prompt.

    `thought`, when given, replaces the Problem Framer's thought (the first one)."""

    def responder(system: str, prompt: str, max_tokens: int) -> str:
        if "already thought" in system:  # the synthesis step
            return answer
        if prompt.startswith("Write one question"):
            return question
        title = next(t for t in THOUGHTS if f"You are the {t}" in system)
        return thought if thought is not None and title == "Problem Framer" else THOUGHTS[title]

    return responder


# --------------------------------------------------------------------------- the real llama.cpp server


@pytest.mark.slow
def test_real_server_end_to_end_crash_and_resume(llama_server, tmp_path):
    """The whole relay on the embedded 135M model through `friction generate`, killed mid-run (SIGKILL, a
    real crash), then rerun. The model may write unusable text: then the seed must be in the failures file
    with a reason and never in the output. Whatever happened, nothing is duplicated, torn or lost."""
    out = tmp_path / "gen.jsonl"
    fails = failures_path(out)
    options = [
        "--n",
        "2",
        "--friction-type",
        "none",
        "--seeds",
        "sampled",
        "--concurrency",
        "1",
        "--max-tokens",
        "32",
    ]
    cmd = [
        sys.executable,
        "-m",
        "friction_lib.cli",
        "generate",
        *options,
        "--base-url",
        llama_server.base_url,
    ]
    process = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if read_jsonl(out) or read_jsonl(fails):
                break
            time.sleep(0.2)
        finished_alone = process.poll() is not None
        process.send_signal(signal.SIGKILL)
    finally:
        _, stderr = process.communicate()
    assert finished_alone or read_jsonl(out) or read_jsonl(fails), stderr.decode()[-2000:]
    first2 = [s.record_id for s in take_seeds("none", 2, source="sampled")]
    done_before = {r.id for r in load_jsonl(out, strict=True).records} if out.exists() else set()
    assert done_before <= set(first2)

    stats = generate_records(
        n=2, friction_types="none", out=out, base_url=llama_server.base_url, seed_source="sampled",
        concurrency=1, max_tokens=32, progress=False,
    )  # fmt: skip
    assert stats.model == llama_server.alias
    assert stats.total_skipped == len(done_before)
    assert stats.total_written + stats.total_failed == 2 - len(done_before)
    records = load_jsonl(out, strict=True).records if out.exists() else []  # strict: no torn line
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) == len(done_before) + stats.total_written
    failed_now = {f["id"] for f in read_jsonl(fails)[len(read_jsonl(fails)) - stats.total_failed :]}
    assert (
        set(ids) | failed_now == set(first2) and not set(ids) & failed_now
    )  # each seed: written xor explained
    for record in records:
        assert [a.agent_type for a in record.agents] == list(PERSONAS)
        assert record.metadata.source == "generated" and record.metadata.generator_model == llama_server.alias
        assert record_problems(record, bounds=None) == []
        assert to_messages(record)[-1]["content"].startswith("<think>\n")
    for failure in read_jsonl(fails):
        assert failure["id"] in first2 and failure["stage"] and failure["reason"]


def test_endpoint_down_names_the_url_and_the_fix(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    for model in (None, "some-model"):  # with and without the /models preflight
        with pytest.raises(FrictionError) as info:
            generate_records(
                1, "none", tmp_path / "x.jsonl", base_url=url, model=model, retries=0, progress=False
            )
        assert url in str(info.value) and "friction serve" in str(info.value)
    assert not (tmp_path / "x.jsonl").exists()
    code = cli.main(["generate", "--n", "1", "--friction-type", "none", "--base-url", url, "--retries", "0",
                     "--out", str(tmp_path / "x.jsonl")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert url in err and "friction serve" in err and "Traceback" not in err


def test_silent_endpoint_stops_generate_and_its_bench_after_timeout(tmp_path, capsys, silent_server):
    """An endpoint that accepts and never answers: `--timeout` bounds the wait, the message names it."""
    code = cli.main(["generate", "--n", "1", "--friction-type", "none", "--base-url", silent_server, "--model", "m",
                     "--retries", "0", "--timeout", "1", "--out", str(tmp_path / "x.jsonl")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert f"No answer from {silent_server} within 1 s" in err and "--timeout" in err
    assert cli.main(["bench", "generate-data", "--base-url", silent_server, "--model", "m", "--n", "1",
                     "--concurrency", "1", "--timeout", "1"]) == 2  # fmt: skip
    assert f"No answer from {silent_server} within 1 s" in capsys.readouterr().err


# --------------------------------------------------------------------------- a scripted HTTP server


class Scripted:
    """A real HTTP server on 127.0.0.1 that answers chat completions with scripted statuses, then 200.

    It stands in for a rate-limited or failing endpoint so the real openai client's retry path runs;
    it is not a model. The 200 answers are `canned()`'s, or cycle through `contents` when given.
    """

    def __init__(self, statuses: list[int], contents: list[str] | None = None):
        self.statuses = list(statuses)
        self.contents = contents  # None: answer each call like `canned()`, from its system prompt
        self.answered = 0
        self.log: list[tuple[int, str]] = []  # (status sent, x-stainless-retry-count received)
        self.times: list[float] = []
        scripted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(
                    200,
                    {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "test"}]},
                )

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status = scripted.statuses.pop(0) if scripted.statuses else 200
                scripted.log.append((status, self.headers.get("x-stainless-retry-count", "")))
                scripted.times.append(time.monotonic())
                if status != 200:
                    self._send(status, {"error": {"message": f"scripted {status}", "type": "scripted"}})
                    return
                if scripted.contents is None:
                    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
                    text = canned()(system, body["messages"][-1]["content"], body.get("max_tokens", 0))
                else:
                    text = scripted.contents[scripted.answered % len(scripted.contents)]
                scripted.answered += 1
                message = {"role": "assistant", "content": text}
                self._send(200, {
                    "id": "c1", "object": "chat.completion", "created": 0, "model": "scripted",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                })  # fmt: skip

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_rate_limit_and_server_errors_are_retried_with_backoff(tmp_path):
    out = tmp_path / "gen.jsonl"
    with Scripted([429, 503]) as server:
        stats = generate_records(1, "false_premise", out, base_url=server.base_url, seed_source="curated",
                                 concurrency=1, retries=3, progress=False)  # fmt: skip
    assert stats.total_written == 1, read_jsonl(failures_path(out))
    statuses = [status for status, _ in server.log]
    assert statuses[:3] == [429, 503, 200] and len(statuses) == 3 + 6  # then the other 5 personas + answer
    assert [count for _, count in server.log[:3]] == ["0", "1", "2"]  # the same call, retried twice
    waits = [b - a for a, b in zip(server.times[:2], server.times[1:3], strict=True)]
    assert waits[0] >= 0.3 and waits[1] >= 0.6 and waits[1] > waits[0]  # exponential backoff (with jitter)
    assert load_jsonl(out).records[0].agents[0].thought_stream == GOOD_THOUGHT


def test_rate_limit_that_never_ends_stops_cleanly(tmp_path):
    out = tmp_path / "gen.jsonl"
    with Scripted([429] * 10) as server, pytest.raises(FrictionError) as info:
        generate_records(1, "none", out, base_url=server.base_url, retries=1, progress=False)
    assert "429" in str(info.value) and "rerun to resume" in str(info.value)
    assert not out.exists()


def test_empty_model_text_goes_to_the_failures_file(tmp_path):
    out = tmp_path / "gen.jsonl"
    with Scripted([], contents=[""]) as server:
        stats = generate_records(2, "clarification", out, base_url=server.base_url, progress=False)
    assert stats.total_written == 0 and stats.total_failed == 2
    assert not out.exists()
    failures = read_jsonl(failures_path(out))
    assert {f["reason"] for f in failures} == {"empty model text"}
    assert {f["stage"] for f in failures} == {"problem_framer"}
    assert {f["id"] for f in failures} == {s.record_id for s in take_seeds("clarification", 2)}


# --------------------------------------------------------------------------- CANNED (responder opt-in)


@pytest.mark.parametrize(
    ("responder", "stage", "reason"),
    [
        (canned(answer="Error: rate limit exceeded, please retry later."), "content", "error-text"),
        (canned(thought="Let me restate {question} before anything else here."), "content", "placeholder"),
        (canned(answer="As an AI language model, I cannot say much about that."), "content", "boilerplate"),
        (canned(thought="   "), "problem_framer", "empty model text"),
        (canned(answer="Ok."), "final_answer", "too little usable text"),
    ],
)
def test_canned_invalid_output_never_becomes_content(tmp_path, responder, stage, reason):
    out = tmp_path / "gen.jsonl"
    stats = generate_records(1, "false_premise", out, responder=responder, progress=False)
    assert stats.total_written == 0 and stats.total_failed == 1
    assert not out.exists()
    failure = read_jsonl(failures_path(out))[0]
    assert failure["stage"] == stage and reason in failure["reason"]
    assert failure["id"] == take_seeds("false_premise", 1)[0].record_id


def test_canned_resume_n2_then_n3_adds_exactly_one(tmp_path):
    out = tmp_path / "gen.jsonl"
    first = generate_records(2, "disagreement", out, responder=canned(), progress=False)
    assert (first.total_written, first.total_skipped) == (2, 0)
    second = generate_records(3, "disagreement", out, responder=canned(), progress=False)
    assert (second.total_written, second.total_skipped, second.total_failed) == (1, 2, 0)
    ids = [r.id for r in load_jsonl(out, strict=True).records]
    expected = [s.record_id for s in take_seeds("disagreement", 3)]
    # records are appended as they finish (4 workers), so the first run's two may land in either order
    assert sorted(ids[:2]) == sorted(expected[:2]) and ids[2:] == expected[2:]


def test_canned_ctrl_c_halfway_then_rerun(tmp_path):
    """Ctrl-C (KeyboardInterrupt) halfway: finished records stay, in-flight seeds are dropped whole, and
    workers stop before their next call; a rerun completes the set without duplicates."""
    out = tmp_path / "gen.jsonl"
    count = {"calls": 0}

    def interrupting(system: str, prompt: str, max_tokens: int) -> str:
        count["calls"] += 1
        if count["calls"] == 17:  # record 1 (7 calls) and 2 (7 calls) are done, record 3 is in flight
            raise KeyboardInterrupt
        return canned()(system, prompt, max_tokens)

    with pytest.raises(KeyboardInterrupt):
        generate_records(4, "clarification", out, responder=interrupting, concurrency=1, progress=False)
    assert count["calls"] == 17  # nothing ran after the interrupt
    assert [r.id for r in load_jsonl(out, strict=True).records] == [
        s.record_id for s in take_seeds("clarification", 2)
    ]
    stats = generate_records(4, "clarification", out, responder=canned(), progress=False)
    assert (stats.total_written, stats.total_skipped) == (2, 2)
    ids = [r.id for r in load_jsonl(out, strict=True).records]
    assert sorted(ids) == sorted(s.record_id for s in take_seeds("clarification", 4))


def test_canned_torn_last_line_is_survived(tmp_path):
    out = tmp_path / "gen.jsonl"
    generate_records(1, "refusal", out, responder=canned(), progress=False)
    with open(out, "a", encoding="utf-8") as handle:
        handle.write('{"id": "gen-refusal-torn", "user_in')  # a crash mid-line, by another writer
    stats = generate_records(2, "refusal", out, responder=canned(), progress=False)
    assert (stats.total_written, stats.total_skipped) == (1, 1)
    loaded = load_jsonl(out, strict=False)
    assert [r.id for r in loaded.records] == [s.record_id for s in take_seeds("refusal", 2)]
    assert len(loaded.problems) == 1 and ":2:" in loaded.problems[0]  # the fragment is reported, not lost


def test_canned_concurrency_is_bounded(tmp_path):
    lock = threading.Lock()
    active = {"now": 0, "max": 0}

    def slow(system: str, prompt: str, max_tokens: int) -> str:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.01)
        with lock:
            active["now"] -= 1
        return canned()(system, prompt, max_tokens)

    stats = generate_records(
        8, "uncertainty", tmp_path / "gen.jsonl", responder=slow, concurrency=3, progress=False
    )
    assert stats.total_written == 8
    assert 2 <= active["max"] <= 3


def test_canned_relay_order_and_context(tmp_path):
    """Each persona sees the question and every earlier thought; the answer gets the type's instruction."""
    calls: list[tuple[str, str]] = []
    texts = [f"Step {n}: {text}" for n, text in enumerate(THOUGHTS.values(), start=1)]

    def numbered(system: str, prompt: str, max_tokens: int) -> str:
        calls.append((system, prompt))
        return texts[len(calls) - 1] if len(calls) <= 6 else GOOD_ANSWER

    generate_records(1, "refusal", tmp_path / "gen.jsonl", responder=numbered, concurrency=1, progress=False)
    question = take_seeds("refusal", 1)[0].question
    personas = load_personas()
    spec = load_synthesis().spec("refusal")
    assert len(calls) == 7
    for k, ((system, prompt), persona) in enumerate(zip(calls[:6], personas, strict=True)):
        assert f"You are the {persona.title}" in system and spec.focus in system
        assert question in prompt
        assert all(f"Step {j}:" in prompt for j in range(1, k + 1))
        assert f"Step {k + 1}:" not in prompt
    system, prompt = calls[6]
    assert spec.instruction in system
    assert question in prompt and all(f"Step {j}:" in prompt for j in range(1, 7))
    record = load_jsonl(tmp_path / "gen.jsonl").records[0]
    assert [a.thought_stream for a in record.agents] == texts


def test_canned_repeated_thought_fails_the_record(tmp_path):
    out = tmp_path / "gen.jsonl"
    stats = generate_records(1, "none", out, responder=lambda s, p, m: GOOD_THOUGHT, progress=False)
    assert stats.total_failed == 1 and not out.exists()
    failure = read_jsonl(failures_path(out))[0]
    assert failure["stage"] == "memory_activator" and failure["reason"] == "repeats an earlier thought"


def test_canned_uncertainty_injection_is_off_by_default(tmp_path):
    off = generate_records(3, "false_premise", tmp_path / "off.jsonl", responder=canned(), progress=False)
    on = generate_records(
        3, "false_premise", tmp_path / "on.jsonl", responder=canned(), uncertainty_prob=1.0, progress=False
    )
    assert off.total_written == on.total_written == 3
    phrases = load_synthesis().uncertainty_phrases
    for record in load_jsonl(tmp_path / "off.jsonl").records:
        assert not any(p in record.reasoning() for p in phrases)
    for record in load_jsonl(tmp_path / "on.jsonl").records:
        assert any(p in record.reasoning() for p in phrases)
        assert any(m.type == "uncertainty" for a in record.agents for m in a.friction_moments)


# --------------------------------------------------------------------------- seeds and templates


def test_seed_stream_is_prefix_stable_and_ids_unique():
    for ftype in FRICTION_TYPES:
        assert take_seeds(ftype, 3) == take_seeds(ftype, 40)[:3]
        assert take_seeds(ftype, 3, seed=1) != take_seeds(ftype, 3)  # --seed reorders
        curated = [s for s in seed_stream(ftype) if s.source == "curated"]
        assert 10 <= len(curated) <= 20
    ids = [s.record_id for t in FRICTION_TYPES for s in seed_stream(t)]
    assert len(ids) == len(set(ids))
    with pytest.raises(FrictionError, match="only"):
        take_seeds("none", 10_000)


def test_template_errors_name_the_file(tmp_path):
    import shutil

    from friction_lib.personas import default_data_dir

    folder = tmp_path / "personas"
    shutil.copytree(default_data_dir() / "personas", folder)
    path = folder / "mechanism_explorer.yaml"
    path.write_text(path.read_text().replace("  {question}\n", "  {questoin}\n"))
    with pytest.raises(FrictionError) as info:
        load_personas(folder)
    assert str(path) in str(info.value) and "{questoin}" in str(info.value)
    path.unlink()
    with pytest.raises(FrictionError, match="mechanism_explorer.yaml: file not found"):
        load_personas(folder)


def test_curated_seeds_are_not_contaminated_by_eval_prompts():
    """Records generated from the curated seeds must survive `friction data curate` (contamination)."""
    from friction_lib.curate import NearIndex, find_eval_files, load_eval_prompts

    prompts, _ = load_eval_prompts(find_eval_files())
    assert prompts, "no eval prompt files found under data/"
    index = NearIndex(threshold=85)
    for prompt in prompts:
        index.add(prompt.text, prompt.id)
    hits = [
        (s.question, index.match(s.question or ""))
        for t in FRICTION_TYPES
        for s in seed_stream(t, source="curated")
    ]
    assert [h for h in hits if h[1]] == []


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        (
            'The user asks: "Why do cats purr?"\nSo far: Purring is mostly contentment.',
            "Purring is mostly contentment.",
        ),
        ('Thought: "I think purring has several causes."', "I think purring has several causes."),
        (
            "The user wants a quick answer, so I will keep it short.",
            "The user wants a quick answer, so I will keep it short.",
        ),
        (
            '"Purr" is also used for engines. Cats purr when content. And then the',
            '"Purr" is also used for engines. Cats purr when content.',
        ),
        ("**Memory Activator:** Cats also purr when hurt.", "Cats also purr when hurt."),
    ],
)
def test_cleaning_model_text(raw, cleaned):
    from friction_lib.personas import clean_text, strip_echo, trim_sentences

    assert trim_sentences(strip_echo(clean_text(raw), "Why do cats purr?"), 3) == cleaned


def test_canned_max_tokens_caps_every_call(tmp_path):
    seen: list[int] = []

    def recording(system: str, prompt: str, max_tokens: int) -> str:
        seen.append(max_tokens)
        return canned()(system, prompt, max_tokens)

    generate_records(1, "none", tmp_path / "a.jsonl", responder=recording, progress=False)
    assert min(seen) > 24  # the templates ask for more
    seen.clear()
    generate_records(1, "none", tmp_path / "b.jsonl", responder=recording, max_tokens=24, progress=False)
    assert seen and set(seen) == {24}


def test_cli_rejects_an_unknown_friction_type(tmp_path, capsys):
    code = cli.main(["generate", "--n", "1", "--friction-type", "sarcasm", "--base-url", "http://127.0.0.1:9/v1",
                     "--out", str(tmp_path / "x.jsonl")])  # fmt: skip
    assert code == 2
    assert "Unknown friction type 'sarcasm'" in capsys.readouterr().err


def test_bench_generate_data_reports_both_levels():
    from friction_lib.bench import bench_generate_data

    with Scripted([]) as server:
        rows = bench_generate_data(server.base_url, n=2, concurrencies=(1, 2))
    assert [r.concurrency for r in rows] == [1, 2]
    assert all(r.written == 2 and r.failed == 0 and r.calls == 14 and r.records_per_minute > 0 for r in rows)
