"""JupyterLab for the workshop: `make lab`, and the real server the browser test and benchmark drive.

- `register_kernel(prefix)`: the project's kernel spec, shown as "Push-Back AI (.venv)". It is written under
  a project-local prefix (`cache/jupyter` for `make lab`), never into the user's Jupyter folders, under the
  name the notebooks already carry (`python3`), so every notebook opens in it with no "select kernel" step.
  Only a server started here sees it (JUPYTER_PATH); papermill and nbval keep the venv's own `python3`
  spec, the same interpreter.
- `lab_command(...)`: the `jupyter lab` command line: notebooks/ as its root, bound to 127.0.0.1, token
  authentication on (Jupyter's default), `--allow-root` only when running as root, offline (no news feed,
  no update check, no extension manager calling PyPI).
- `start_lab(...)`: that server as a child that dies with its parent (`processes.start_child`), on a free
  loopback port, returning a `Lab` with its URL; `Lab.stop()` ends it and its kernels.
- `main()`: `make lab` (`python -m friction_lib.lab`): registers the kernel and runs JupyterLab in the
  foreground; a taken port makes Jupyter try the next ones and print the URL it got.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from friction_lib.errors import FrictionError
from friction_lib.processes import start_child, stop_child

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "python3"  # the name in every notebook's metadata (and the one papermill and nbval use)
KERNEL_DISPLAY_NAME = "Push-Back AI (.venv)"
DEFAULT_STATE = ROOT / "cache" / "jupyter"  # make lab: the kernel spec lives here (make clean removes it)
DEFAULT_PORT = 8888
# Jupyter defaults that reach the internet; the workshop runs offline.
OFFLINE_ARGS: tuple[str, ...] = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
)
# JupyterLab defaults (user settings still win): no news prompt, no update check.
LAB_DEFAULTS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
# For a server a program drives: never write the notebooks back (they are committed without outputs), and
# keep every cell in the page (JupyterLab otherwise renders only the cells in view).
DRIVEN_DEFAULTS: dict[str, dict[str, Any]] = {
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}
# A driven server reads and writes none of the user's Jupyter folders: all of them go under its state folder.
ISOLATED_DIRS = {
    "JUPYTER_CONFIG_DIR": "user-config",
    "JUPYTER_DATA_DIR": "user-data",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "JUPYTERLAB_SETTINGS_DIR": "user-settings",
    "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
}
# The models' environment, as `make` sets it (see the Makefile): offline hub, no spinning OpenMP threads.
KERNEL_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def register_kernel(prefix: Path) -> Path:
    """Write the project's kernel spec (this interpreter, "Push-Back AI (.venv)") under `prefix`; return the
    data folder to put first on JUPYTER_PATH."""
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=str(prefix))
    return prefix / "share" / "jupyter"


def lab_command(
    root_dir: Path = NOTEBOOKS,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    open_browser: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """`jupyter lab` on 127.0.0.1 with token authentication; `token=None` lets Jupyter make one."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root_dir}", "--ServerApp.ip=127.0.0.1"]
    cmd += [f"--ServerApp.port={port}", *OFFLINE_ARGS]
    if token is not None:
        if not token:
            raise FrictionError("An empty token would turn authentication off; pass None for a random one.")
        cmd.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # Jupyter refuses to start as root without it
    return [*cmd, *extra]


def write_defaults(state: Path, defaults: Mapping[str, Any]) -> Path:
    """JupyterLab setting defaults as `labconfig/default_setting_overrides.json` in a config folder under
    `state`; returns the folder to put on JUPYTER_CONFIG_PATH."""
    config = state / "config"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "default_setting_overrides.json").write_text(
        json.dumps(defaults, indent=1) + "\n"
    )
    return config


def _prepend(env: dict[str, str], key: str, path: Path) -> None:
    env[key] = os.pathsep.join(p for p in (str(path), env.get(key, "")) if p)


def lab_env(
    state: Path, base: Mapping[str, str] | None = None, defaults: Mapping[str, Any] = LAB_DEFAULTS
) -> dict[str, str]:
    """The server's (and so its kernels') environment: the project kernel first on JUPYTER_PATH, the
    settings defaults on JUPYTER_CONFIG_PATH, the models' variables unless already set."""
    env = dict(os.environ if base is None else base)
    for key, value in KERNEL_ENV.items():
        env.setdefault(key, value)
    _prepend(env, "JUPYTER_PATH", register_kernel(state / "kernel"))
    _prepend(env, "JUPYTER_CONFIG_PATH", write_defaults(state, defaults))
    return env


@dataclass
class Lab:
    """A running JupyterLab server started by `start_lab`."""

    proc: Any
    port: int
    token: str
    root_dir: Path
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab") -> str:
        """A URL of the server with its token (e.g. `lab/tree/01_friction_concept.ipynb`)."""
        return f"{self.base_url}/{path}?token={self.token}"

    def api(self, path: str, timeout: float = 5.0) -> Any:
        """GET a REST endpoint of the server (`api/kernelspecs`, `api/kernels`) as JSON."""
        request = urllib.request.Request(
            f"{self.base_url}/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM: Jupyter shuts its kernels down, then exits; SIGKILL after `grace` seconds."""
        return stop_child(self.proc, grace=grace)


def _wait_ready(lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.proc.poll() is not None:
            raise FrictionError(f"JupyterLab exited with code {lab.proc.returncode}; its log: {lab.log}")
        try:
            lab.api("api/status", timeout=2.0)
            return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.25)
    lab.stop()
    raise FrictionError(
        f"JupyterLab did not answer on {lab.base_url} within {timeout:.0f} s; its log: {lab.log}"
    )


def start_lab(
    state: Path,
    root_dir: Path = NOTEBOOKS,
    env: Mapping[str, str] | None = None,
    timeout: float = 90.0,
    extra: Sequence[str] = (),
) -> Lab:
    """JupyterLab as a child on a free 127.0.0.1 port, with a fresh token, the project kernel registered
    under `state` and its log in `state/lab.log`; returns once the server answers."""
    from friction_lib.engines import free_port

    state.mkdir(parents=True, exist_ok=True)
    server_env = lab_env(state, env, {**LAB_DEFAULTS, **DRIVEN_DEFAULTS})
    for key, folder in ISOLATED_DIRS.items():  # nothing read from or written to the user's Jupyter folders
        server_env[key] = str(state / folder)
    port, token = free_port(), secrets.token_hex(24)
    cmd = lab_command(root_dir, port, token, open_browser=False, extra=("--ServerApp.port_retries=0", *extra))
    log = state / "lab.log"
    with log.open("wb") as out:
        proc = start_child(cmd, env=server_env, stdout=out, stderr=out, cwd=root_dir)
    lab = Lab(proc, port, token, root_dir, log)
    _wait_ready(lab, timeout)
    return lab


def main(argv: list[str] | None = None) -> int:
    """`make lab`: JupyterLab on notebooks/ in the foreground, with the project kernel."""
    parser = argparse.ArgumentParser(prog="python -m friction_lib.lab", description=main.__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("LAB_PORT", DEFAULT_PORT)),
                        help="first port to try; Jupyter tries the next ones if it is taken")  # fmt: skip
    parser.add_argument("--no-browser", action="store_true", help="only print the URL")
    parser.add_argument("extra", nargs="*", help="more `jupyter lab` options, after --")
    args = parser.parse_args(argv)
    env = lab_env(DEFAULT_STATE)
    cmd = lab_command(port=args.port, open_browser=not args.no_browser, extra=args.extra)
    print(f'JupyterLab on {NOTEBOOKS} with the kernel "{KERNEL_DISPLAY_NAME}" ({sys.executable}).')
    print("Open the URL with the token that Jupyter prints below (127.0.0.1 only); Ctrl-C twice stops it.")
    sys.stdout.flush()
    os.chdir(NOTEBOOKS)
    os.execve(cmd[0], cmd, env)
    return 0  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main())
