"""Build the site and take screenshots of the home page, the quick start and the Trainer API page
with headless Chromium (Debian's ``chromium`` package), to look at what readers see.

    python docs/_build/screenshots.py [OUT_DIR]     # default: site-screenshots/

The screenshots are for looking at, not for committing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = {"home": "index.html", "quickstart": "quickstart/index.html",
         "api-trainer": "api/trainer/index.html"}
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--window-size=1400,1100")


def main(out_dir: str = "site-screenshots") -> list[Path]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs Chromium: apt-get install -y chromium")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                        "--site-dir", str(site)], cwd=REPO, check=True)
        for name, page in PAGES.items():
            shot = out / f"{name}.png"
            profile = Path(tmp) / f"profile-{name}"  # a fresh user-data-dir per page
            subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}",
                            f"--screenshot={shot}", (site / page).as_uri()],
                           check=True, capture_output=True, timeout=120)
            shots.append(shot)
    return shots


if __name__ == "__main__":
    for path in main(*sys.argv[1:2]):
        print(path)
