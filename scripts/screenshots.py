"""Take the screenshots of docs/ui.md: a real server of the UI tests' app on a temporary
SQLite store, a few runs made through the HTTP API, and Debian's Chromium at 1280x800.

    .venv/bin/python scripts/screenshots.py [--out docs/images]

With ``pngquant`` installed (``apt-get install pngquant``) the pictures are made about
three times smaller.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "tests")]

import httpx  # noqa: E402
import uiapp  # noqa: E402
from httpkit import running_server  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "screenshot-admin-token"


def wait_for(api: httpx.Client, run_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = api.get(f"/runs/{quote(run_id, safe='')}").json()
        if run["status"] in statuses:
            return run
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} is still {run['status']}")
        time.sleep(0.05)


def seed(api: httpx.Client, folder: Path) -> str:
    """Runs worth looking at; returns the id of the failed checkout. Flag files are
    named relative to ``folder``, the server's working directory (short error texts)."""
    os.chdir(folder)
    up = Path("gateway-up")
    up.touch()

    def start(workflow: str, *args: Any, **options: Any) -> str:
        answer = api.post("/runs", json={"workflow": workflow, "args": list(args), **options})
        answer.raise_for_status()
        return str(answer.json()["id"])

    for n, customer in enumerate(["cust-7", "cust-12", "cust-42"]):
        wait_for(api, start("checkout", f"order-{n + 10}", str(up), key=customer), "completed")
    wait_for(api, start("orders", {"amount": 30}, key="cust-12"), "completed")
    wait_for(api, start("signup", key="alice", kwargs={"record": {}}), "completed")
    wait_for(api, start("fan_out", ["a", "b"], str(up)), "completed")
    wait_for(api, start("mischief", "card declined: insufficient funds"), "failed")
    paused = start("approval", "expense 88")
    wait_for(api, paused, "running")
    api.post(f"/runs/{paused}/pause", json={}).raise_for_status()
    wait_for(api, start("approval", "expense 91"), "running")
    failed = start("checkout", "order-17", "gateway-up-again", key="cust-42")
    wait_for(api, failed, "failed")
    return failed


def shrink(path: Path) -> None:
    """Fewer colours, same look (the pages are flat colours and text)."""
    if shutil.which("pngquant"):
        command = ["pngquant", "--quality=70-95", "--speed=1", "--force", "--strip"]
        subprocess.run([*command, "--output", str(path), str(path)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        app = uiapp.build(f"sqlite:///{folder / 'perdure.db'}")
        with running_server(app, tokens={TOKEN: "admin"}) as url:
            api = httpx.Client(
                base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            failed = seed(api, folder)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_init_script(f"localStorage.setItem('perdure.token', {TOKEN!r})")
                page = context.new_page()
                shots = [
                    ("ui-runs.png", "#/runs", "table.runs tbody tr >> nth=9", None),
                    ("ui-run.png", f"#/runs/{failed}", "section.graph svg", "Details of step 1"),
                    ("ui-definitions.png", "#/definitions", "svg.graph >> nth=1", None),
                    ("ui-workers.png", "#/workers", "table.workers tbody td >> nth=1", None),
                ]
                for name, route, ready, click in shots:
                    page.goto(f"{url}/{route}")
                    page.locator(ready).wait_for()
                    page.locator(".count-value >> text=…").first.wait_for(state="detached")
                    if click:
                        page.get_by_text(click).click()
                    page.screenshot(path=str(out / name))
                    shrink(out / name)
                    print(out / name)
                browser.close()
            api.close()


if __name__ == "__main__":
    main()
