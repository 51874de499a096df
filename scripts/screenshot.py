"""Render the demo's static comparison with real models and screenshot it with headless Chromium.

    .venv/bin/python scripts/screenshot.py                 # -> docs/demo_screenshot.png
    .venv/bin/python scripts/screenshot.py --ids demo-fp-01,demo-harm-01 --out /tmp/shot.png

Needs Chromium (`apt-get install -y chromium`). The HTML and its JSON twin are kept beside the PNG's
run folder (runs/screenshot/) so the picture can be traced back to what the models said.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IDS = "demo-fp-01,demo-harm-01,demo-ctl-01"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", default=DEFAULT_IDS, help="demo prompt ids, comma-separated")
    parser.add_argument("--models", default="base,prompted,tuned")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "demo_screenshot.png"))
    parser.add_argument("--html", default=str(ROOT / "runs" / "screenshot" / "demo.html"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=2400, help="window height; the empty bottom is cropped")
    args = parser.parse_args()

    from friction_lib import browser, demo, display

    prompts = demo.showcase(demo.load_demo_prompts(), [i.strip() for i in args.ids.split(",") if i.strip()])
    config = demo.DemoConfig(max_new_tokens=args.max_new_tokens or demo.DEFAULT_MAX_NEW_TOKENS)
    comparisons = demo.compare(prompts, demo.parse_columns(args.models), config, progress=True)
    page = display.save_html(args.html, comparisons)
    png = browser.screenshot(page, args.out, width=args.width, height=args.height)
    print(f"HTML {page}\nPNG  {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
