"""Screenshots of the operator's report for the documentation: docs/report.png, docs/event.png.

Runs the nightly job on the bundled example, as

    ssafuse run --config examples/nightly.toml --now 2026-03-10T02:00:00Z

would, but with the store redirected to a temporary folder (so the example's own store is left
alone), then takes PNG screenshots with headless Chromium (Debian's ``chromium``) of the run's
``report.html`` and of the page of the first event it lists (``events/<key>.html``)::

    python docs/make_screenshots.py                      # run the example, then shoot
    python docs/make_screenshots.py --config my.toml --now 2026-03-10T02:00:00Z
    python docs/make_screenshots.py --run-dir STORE/runs/<run id>   # an existing run

Exit status 0 when both screenshots were written, else 1 (with the reason on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
WINDOW = "1280,2400"


def run_example(config: Path, now: str, store: Path) -> Path:
    """Run the nightly job of ``config`` as of ``now`` with its store at ``store``; the run
    folder (raises ``RuntimeError`` when the run failed)."""
    sys.path.insert(0, str(ROOT))
    from ssafuse.nightly import load_config, run  # the checkout's ssafuse, found above
    from ssafuse.timeutil import parse_iso

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    cfg = dataclasses.replace(load_config(config), store=store, lock_file=None)
    result = run(cfg, now=parse_iso(now))
    if result.exit_code == 2 or not (result.run_dir / "report.html").exists():
        raise RuntimeError(f"the run failed: {'; '.join(result.errors) or 'no report'}")
    return result.run_dir


def first_event_page(run_dir: Path) -> Path:
    """The page of the first event row of ``run_dir/report.html`` (document order)."""
    html = (run_dir / "report.html").read_text()
    found = re.search(r'<tr class="event"[^>]*>\s*<td><a href="(events/[^"]+\.html)"', html)
    if found is None:
        raise RuntimeError(f"{run_dir / 'report.html'} links to no event page (was it built "
                           "by an ssafuse that writes them, with at least one event?)")
    return run_dir / found.group(1)


def screenshot(chromium: str, page: Path, png: Path, profile: Path) -> None:
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                    f"--window-size={WINDOW}", f"--screenshot={png}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=180)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot of {page}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "nightly.toml",
                    help="the nightly job's configuration (default: examples/nightly.toml)")
    ap.add_argument("--now", default="2026-03-10T02:00:00Z",
                    help="the time to run as (default: 2026-03-10T02:00:00Z)")
    ap.add_argument("--run-dir", type=Path, default=None,
                    help="an existing run folder to shoot instead of running the job")
    ap.add_argument("--out", type=Path, default=HERE,
                    help="where report.png and event.png go (default: docs/)")
    args = ap.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("make_screenshots: chromium is not installed (Debian: apt-get install chromium)",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ssafuse-shots-") as tmp:
        tmp = Path(tmp)
        try:
            run_dir = args.run_dir or run_example(args.config, args.now, tmp / "store")
            event = first_event_page(run_dir)
            args.out.mkdir(parents=True, exist_ok=True)
            screenshot(chromium, run_dir / "report.html", args.out / "report.png",
                       tmp / "profile-report")
            screenshot(chromium, event, args.out / "event.png", tmp / "profile-event")
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            print(f"make_screenshots: {e}", file=sys.stderr)
            return 1
    print(f"wrote {args.out / 'report.png'} (report of {run_dir.name}) and "
          f"{args.out / 'event.png'} ({event.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
