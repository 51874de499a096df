"""The workshop in a real JupyterLab: a real server on a free loopback port, driven in headless Chromium.

Notebook 01 runs top to bottom, then the live A/B/C widget streams a prompt into three columns; notebook 04's
plots render as images (both with FRICTION_SMOKE=1 in the server's environment, which the notebooks read).
A kernel killed (SIGKILL, as the out-of-memory killer does) while the widget streams leaves a message in the
widget area. The last test stops the server and checks that nothing it started is left running.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from friction_lib import lab as lab_mod
from friction_lib import lab_browser
from friction_lib.browser import CHROMIUM_INSTALL, find_chromium
from friction_lib.demo import load_demo_prompts
from friction_lib.errors import FrictionError

NOTEBOOKS = ("01_friction_concept.ipynb", "04_eval.ipynb")
# Not the widget's preselected prompt, so the pick itself is checked. At smoke mode's 24 tokens, base and prompted
# stop after 8 tokens while the tuned column (which opens with an empty <think></think>) runs to the limit.
WIDGET_PROMPT = "demo-amb-02"
HALF_TAGS = tuple(tag[:n] for tag in ("<think>", "</think>") for n in range(1, len(tag)))
RUN_TIMEOUT = 300.0  # seconds for one notebook or one widget run (about 20-60 s on 2 busy cores)
KERNEL_LOST = "The kernel stopped (out of memory?)"
LABELS = {"COMPLY", "REFUSE", "PARTIAL", "CLARIFY", "CHALLENGE", "ABSTAIN", "DEGENERATE"}


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _digests() -> dict[str, str]:
    return {n: hashlib.sha256((lab_mod.NOTEBOOKS / n).read_bytes()).hexdigest() for n in NOTEBOOKS}


# --------------------------------------------------------------------------- the command line, no server


def test_lab_command_is_loopback_with_a_token_and_root_only_when_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cmd = lab_mod.lab_command(port=8899)
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=8899" in cmd
    assert f"--ServerApp.root_dir={lab_mod.NOTEBOOKS}" in cmd
    assert "--allow-root" not in cmd and not any("token" in a for a in cmd)  # Jupyter makes a random token
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab_mod.lab_command()
    assert "--IdentityProvider.token=abc" in lab_mod.lab_command(token="abc")
    with pytest.raises(FrictionError, match="authentication off"):
        lab_mod.lab_command(token="")


def test_lab_env_puts_the_project_kernel_first(tmp_path):
    env = lab_mod.lab_env(tmp_path, base={"JUPYTER_PATH": "/elsewhere", "OMP_WAIT_POLICY": "ACTIVE"})
    assert env["JUPYTER_PATH"].split(os.pathsep) == [
        str(tmp_path / "kernel" / "share" / "jupyter"),
        "/elsewhere",
    ]
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["HF_HUB_OFFLINE"] == "1"  # set values are kept
    spec = tmp_path / "kernel" / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    assert lab_mod.KERNEL_DISPLAY_NAME in spec.read_text() and sys.executable in spec.read_text()
    labconfig = Path(env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0]) / "labconfig"
    assert '"fetchNews": "false"' in (labconfig / "default_setting_overrides.json").read_text()


def test_make_lab_execs_jupyter_on_notebooks_with_the_project_kernel(monkeypatch, tmp_path, capsys):
    """`make lab` runs `python -m friction_lib.lab --port N`: it becomes Jupyter (execve) in notebooks/."""
    calls: list = []
    monkeypatch.setattr(lab_mod, "DEFAULT_STATE", tmp_path)
    monkeypatch.setattr(os, "chdir", calls.append)
    monkeypatch.setattr(os, "execve", lambda path, cmd, env: calls.append((path, cmd, env)))
    lab_mod.main(["--port", "8999", "--no-browser", "--", "--ServerApp.shutdown_no_activity_timeout=60"])
    folder, (path, cmd, env) = calls
    assert folder == lab_mod.NOTEBOOKS and path == sys.executable == cmd[0]
    assert cmd[1:3] == ["-m", "jupyterlab"] and "--ServerApp.port=8999" in cmd and "--no-browser" in cmd
    assert cmd[-1] == "--ServerApp.shutdown_no_activity_timeout=60"
    assert env["JUPYTER_PATH"].startswith(str(tmp_path / "kernel"))
    assert "Push-Back AI (.venv)" in capsys.readouterr().out


# --------------------------------------------------------------------------- a real server, a real browser


class Session:
    """The server and the browser of this module, and what was running before them."""

    def __init__(self, state: Path) -> None:
        self.baseline, self.digests = _descendants(), _digests()
        self.stack = contextlib.ExitStack()
        self.lab = lab_mod.start_lab(state, env={**os.environ, "FRICTION_SMOKE": "1"})
        self.stack.callback(self.lab.stop)
        self.browser = self.stack.enter_context(lab_browser.browser())

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """JupyterLab (a child of this process) on a free 127.0.0.1 port, smoke mode, autosave off, and a page."""
    if find_chromium() is None:
        pytest.skip(f"headless Chromium is not installed: {CHROMIUM_INSTALL}")
    session = Session(tmp_path_factory.mktemp("lab"))
    try:
        yield session
    finally:
        session.close()


@pytest.mark.slow
def test_the_server_serves_the_project_kernel(session):
    lab = session.lab
    specs = lab.api("api/kernelspecs")
    spec = specs["kernelspecs"][lab_mod.KERNEL_NAME]["spec"]
    assert specs["default"] == lab_mod.KERNEL_NAME
    assert spec["display_name"] == "Push-Back AI (.venv)" and spec["argv"][0] == sys.executable
    assert lab.base_url.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.HTTPError, match="403"):  # token authentication is on
        urllib.request.urlopen(f"{lab.base_url}/api/kernelspecs", timeout=5)


@pytest.mark.slow
def test_live_demo_streams_three_columns(session):
    page = lab_browser.open_notebook(session.browser, session.lab, NOTEBOOKS[0])
    assert "Push-Back AI (.venv)" in page.locator(".jp-NotebookPanel-toolbar").inner_text()
    ran = lab_browser.run_all(page, timeout=RUN_TIMEOUT)
    assert ran.first_comparison is not None, "Run all showed no finished three-column comparison"
    [prompt] = [p.prompt for p in load_demo_prompts() if p.id == WIDGET_PROMPT]
    run = lab_browser.run_widget(page, prompt, timeout=RUN_TIMEOUT)
    assert [c["key"] for c in run.final] == ["base", "prompted", "tuned"]
    for column in run.final:
        assert column["reasoning"], f"{column['key']}: no reasoning block"
        assert column["chip"] in LABELS, f"{column['key']}: label chip {column['chip']!r}"
        assert not column["cursor"] and "tokens" in column["foot"]
    growth = run.growth()
    for key, lengths in growth.items():
        assert len(lengths) >= 2 and lengths[-1] > lengths[0], (
            f"{key} did not grow while streaming: {lengths}"
        )
    assert len(growth["tuned"]) >= 3, growth
    _check_columns_end_on_their_own(run)
    _check_no_half_tags(run)
    label = page.locator(".widget-label", has_text="Endpoint URL").first
    assert label.evaluate("(el) => el.scrollWidth <= el.clientWidth"), "the Endpoint URL label is cut"
    print(f"\nrun all {ran.seconds:.1f} s (first comparison {ran.first_comparison:.1f} s); "
          f"widget prompt {run.seconds:.1f} s, first text at {run.first_text()} s")  # fmt: skip


def _seconds(foot: str) -> float:
    found = re.search(r"([\d.]+) s\b", foot)
    assert found, foot
    return float(found.group(1))


def _check_columns_end_on_their_own(run: lab_browser.WidgetRun) -> None:
    """Some column is finished (cursor off, its label chip, its own footer) while another still streams, and
    the footers give each column's own time."""
    early = [
        (done["key"], snap["t"])
        for snap in run.snapshots
        for done in snap["columns"]
        if not done["cursor"] and done["chip"] in LABELS and done["foot"]
        if any(c["cursor"] for c in snap["columns"])
    ]
    assert early, "no column was finished while another still streamed"
    seconds = {c["key"]: _seconds(c["foot"]) for c in run.final}
    assert seconds[early[0][0]] < max(seconds.values()), seconds


def _check_no_half_tags(run: lab_browser.WidgetRun) -> None:
    """No state of the board showed a piece of <think> or </think> as text (the observer saw every state)."""
    for snap in run.snapshots:
        for column in snap["columns"]:
            body = column["body"].rstrip()
            assert "think>" not in body and not body.endswith(HALF_TAGS), (snap["t"], column)


@pytest.mark.slow
def test_eval_plots_render_as_images(session):
    page = lab_browser.open_notebook(session.browser, session.lab, NOTEBOOKS[1])
    lab_browser.run_all(page, timeout=RUN_TIMEOUT)
    images = [i for i in lab_browser.output_images(page) if i["mime"] == "image/png"]
    assert len(images) >= 2, images
    assert all(i["complete"] and i["width"] > 100 and i["height"] > 100 for i in images), images


def _kernel_pid(lab: lab_mod.Lab, name: str) -> int:
    """The process of the kernel the server runs for notebook `name` (its connection file names its id)."""
    [kernel_id] = {s["kernel"]["id"] for s in lab.api("api/sessions") if s.get("path", "").endswith(name)}
    for proc in psutil.Process(lab.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(f"kernel-{kernel_id}.json" in arg for arg in proc.cmdline()):
                return proc.pid
    raise AssertionError(f"no process for kernel {kernel_id}")


def _wait_idle(lab: lab_mod.Lab, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {s["kernel"]["execution_state"] for s in lab.api("api/sessions") if s["path"].endswith(name)}
        if states == {"idle"}:
            return
        time.sleep(0.25)
    raise AssertionError(f"the kernel of {name} was not idle again within {timeout:.0f} s")


@pytest.mark.slow
def test_a_kernel_killed_mid_demo_leaves_a_message_in_the_widget(session, tmp_path):
    page = lab_browser.open_notebook(session.browser, session.lab, NOTEBOOKS[0])
    lab_browser.run_all(page, timeout=RUN_TIMEOUT)
    [prompt] = [p.prompt for p in load_demo_prompts() if p.id == WIDGET_PROMPT]
    run = lab_browser.start_widget(page, prompt, timeout=RUN_TIMEOUT, max_tokens=512)
    page.wait_for_function(  # a column streams
        "(board) => window.fxColumns(board).some((c) => c.cursor && c.text > 0)",
        arg=run.board.element_handle(), timeout=RUN_TIMEOUT * 1000, polling=100,
    )  # fmt: skip
    os.kill(_kernel_pid(session.lab, NOTEBOOKS[0]), signal.SIGKILL)
    killed = time.perf_counter()
    message = run.ui.get_by_text(KERNEL_LOST)
    try:
        message.wait_for(state="visible", timeout=60_000)
    finally:
        page.screenshot(path=str(tmp_path / "killed.png"))
        shown = run.ui.evaluate("(ui) => [ui.className, ui.innerText.slice(-600)]")
        print(f"\nthe widget area {time.perf_counter() - killed:.1f} s after the kill: {shown}")
    assert (
        "Restart Kernel and Run All Cells" in message.inner_text()
        and "MAX_NEW_TOKENS" in message.inner_text()
    )
    _wait_idle(
        session.lab, NOTEBOOKS[0]
    )  # the server restarted the kernel: the message stays once that is done
    page.get_by_role("dialog").get_by_role(
        "button", name="Ok"
    ).click()  # "Kernel Restarting … appears to have died"
    page.wait_for_timeout(1000)
    assert message.is_visible() and not run.ui.locator(".fx-cursor").first.is_visible()


@pytest.mark.slow
def test_stopping_leaves_no_process_and_no_saved_notebook(session):
    started = _descendants() - session.baseline
    assert session.lab.proc.pid in started
    session.close()  # the server (and so its kernels), then the browser
    deadline = time.monotonic() + 15
    while _alive(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(started), f"left running: {[psutil.Process(p).cmdline() for p in _alive(started)]}"
    assert not _descendants() - session.baseline
    with pytest.raises(OSError):
        session.lab.api("api/status", timeout=2)
    assert _digests() == session.digests, "a notebook was written back (outputs must stay stripped)"
