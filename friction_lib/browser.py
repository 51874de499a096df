"""Headless Chromium: the DOM and a PNG of an HTML file, as a browser renders it.

Used by `scripts/screenshot.py` (docs/demo_screenshot.png) and by the tests that check the demo's HTML in a
real browser. Chromium runs as a child that dies with this process (`processes.run_child`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from friction_lib.errors import FrictionError
from friction_lib.processes import run_child

CHROMIUM_INSTALL = "apt-get install -y chromium"
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    binary = find_chromium()
    if binary is None:
        raise FrictionError(f"Headless Chromium is not installed. Install it with: {CHROMIUM_INSTALL}")
    with tempfile.TemporaryDirectory(prefix="friction-chromium-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return run_child(cmd, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired as exc:
            raise FrictionError(f"Chromium did not finish within {timeout:.0f} s: {' '.join(cmd)}") from exc


def dump_dom(html_path: str | Path, timeout: float = 60.0) -> str:
    """The DOM of an HTML file as headless Chromium parsed it."""
    done = _chromium(["--dump-dom", Path(html_path).resolve().as_uri()], timeout)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise FrictionError(
            f"Chromium could not render {html_path} (exit {done.returncode}): {done.stderr[-800:]}"
        )
    return done.stdout


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    width: int = 1600,
    height: int = 1200,
    timeout: float = 90.0,
    crop: bool = True,
) -> Path:
    """A PNG of the HTML page rendered by headless Chromium at width x height (empty bottom cropped)."""
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}-tmp.png")
    done = _chromium(
        [f"--screenshot={tmp}", f"--window-size={width},{height}", "--force-device-scale-factor=1",
         Path(html_path).resolve().as_uri()],
        timeout,
    )  # fmt: skip
    if done.returncode != 0 or not tmp.exists():
        raise FrictionError(
            f"Chromium could not screenshot {html_path} (exit {done.returncode}): {done.stderr[-800:]}"
        )
    if crop:
        _crop_bottom(tmp)
    os.replace(tmp, out)
    return out


def _crop_bottom(png: Path, margin: int = 24) -> None:
    """Cut the empty page background below the last comparison (the window is taller than the page)."""
    from PIL import Image, ImageChops

    with Image.open(png) as image:
        rgb = image.convert("RGB")
    background = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
    box = ImageChops.difference(rgb, background).getbbox()
    if box and box[3] + margin < rgb.height:
        rgb.crop((0, 0, rgb.width, box[3] + margin)).save(png)
