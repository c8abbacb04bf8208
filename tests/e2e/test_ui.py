"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against a real
server on a loopback port, on a SQLite store (scenario F4 and the UI's promises).

Without /usr/bin/chromium the tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uiapp
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from stores import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI = Path(__file__).resolve().parents[2] / "src" / "perdure" / "server" / "ui"
ADMIN = "admin-token-for-the-ui-tests"
READ = "read-token-for-the-ui-tests"

# Pages poll the API every few seconds: assertions wait for what they expect to appear.
expect.set_options(timeout=20_000)
pytestmark = pytest.mark.timeout(240)


# -- the browser and the server --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Api:
    """The HTTP API as the tests' setup uses it (an admin token), to make and watch runs."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
        )

    def start(self, workflow: str, *args: Any, **options: Any) -> dict[str, Any]:
        answer = self.client.post(
            "/runs", json={"workflow": workflow, "args": list(args), **options}
        )
        assert answer.status_code == 201, answer.text
        run: dict[str, Any] = answer.json()
        return run

    def run(self, run_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/runs/{quote(run_id, safe='')}")
        assert answer.status_code == 200, answer.text
        run: dict[str, Any] = answer.json()
        return run

    def wait_for(self, run_id: str, *statuses: str, within: float = 30.0) -> dict[str, Any]:
        """Poll until the run reaches one of ``statuses`` (a bounded wait, not a timing check)."""
        deadline = time.monotonic() + within
        while True:
            run = self.run(run_id)
            if run["status"] in statuses:
                return run
            assert time.monotonic() < deadline, f"run {run_id} is still {run['status']}"
            time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real server of ``uiapp`` (with its worker) on a free loopback port: its base URL."""
    from httpkit import running_server

    app = uiapp.build(f"sqlite:///{tmp_path / 'perdure.db'}")
    with running_server(app, tokens={ADMIN: "admin", READ: "read"}) as url:
        yield url


@pytest.fixture
def api(server: str) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.client.close()


@pytest.fixture
def open_page(browser: Browser, server: str) -> Iterator[Callable[..., Page]]:
    """Open the UI at a hash route with a token (or none) kept in localStorage. Every
    request the page makes is recorded on ``page.requests``: the UI works offline."""
    contexts: list[BrowserContext] = []

    def open_at(route: str = "#/runs", token: str | None = ADMIN) -> Page:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        contexts.append(context)
        if token is not None:
            context.add_init_script(f"localStorage.setItem('perdure.token', {token!r})")
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.requests = requests  # type: ignore[attr-defined]
        page.goto(f"{server}/{route}")
        return page

    yield open_at
    for context in contexts:
        context.close()


def run_link(page: Page, run_id: str) -> Any:
    return page.get_by_role("link", name=run_id, exact=True)


def step(page: Page, position: int) -> Any:
    return page.locator(f"ol.timeline li.step[data-position='{position}']")


# -- F4: a failed run, its timeline, a retry ------------------------------------------------


def test_a_failed_run_is_listed_shown_with_its_error_and_completes_when_retried(
    open_page: Callable[..., Page], api: Api, tmp_path: Path
) -> None:
    flag = tmp_path / "gateway-up"
    failed = api.start("checkout", "order-17", str(flag), key="cust-42")
    api.wait_for(failed["id"], "failed")

    page = open_page("#/runs")
    row = page.locator("table.runs tbody tr", has=run_link(page, failed["id"]))
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("payment gateway is down")

    run_link(page, failed["id"]).click()
    expect(page).to_have_url(re.compile(r"#/runs/"))
    expect(page.locator(".head-status")).to_have_text("failed")
    expect(step(page, 0)).to_contain_text("reserve")
    expect(step(page, 0).locator(".status")).to_have_text("completed")
    charge = step(page, 1)
    expect(charge.locator(".name")).to_have_text("charge")
    expect(charge.locator(".status")).to_have_text("failed")
    expect(charge.locator(".attempt-count")).to_have_text("2 attempts")
    expect(charge.locator("p.step-error")).to_contain_text("RuntimeError: payment gateway is down")
    charge.get_by_text("Details of step 1 (charge)").click()
    attempts = charge.locator("table.attempts tbody tr")
    expect(attempts).to_have_count(2)
    expect(charge.locator("details.traceback").first).to_contain_text("Traceback")
    expect(page.locator("section.run-error")).to_contain_text("payment gateway is down")

    flag.touch()  # the cause is fixed: the gateway is up
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".head-status")).to_have_text("completed")
    expect(page.locator("section.io")).to_contain_text("charged order-17")
    expect(step(page, 1).locator(".status")).to_have_text("completed")
    expect(step(page, 2)).to_contain_text("ship")
    expect(page.get_by_role("button", name="Retry")).to_be_disabled()
    assert api.run(failed["id"])["status"] == "completed"

    page.get_by_role("link", name="← All runs").click()
    expect(page.locator("table.runs tbody tr", has=run_link(page, failed["id"]))).to_contain_text(
        "completed"
    )
    assert all(url.startswith(server_of(page)) for url in page.requests)  # type: ignore[attr-defined]


def server_of(page: Page) -> str:
    return re.sub(r"(https?://[^/]+)/.*", r"\1/", page.url)


# -- the run list ---------------------------------------------------------------------------


def test_counts_per_status_update_in_place_while_the_list_is_open(
    open_page: Callable[..., Page], api: Api, tmp_path: Path
) -> None:
    first = api.start("checkout", "order-1", str(tmp_path / "missing"))
    api.wait_for(first["id"], "failed")
    page = open_page("#/runs")
    failed_count = page.locator(".counts button[data-status='failed'] .count-value")
    expect(failed_count).to_have_text("1")
    shown = failed_count.element_handle()

    second = api.start("checkout", "order-2", str(tmp_path / "missing"))
    api.wait_for(second["id"], "failed")
    expect(failed_count).to_have_text("2")
    expect(run_link(page, second["id"])).to_be_visible()
    assert shown is not None and shown.evaluate("node => node.isConnected")  # not redrawn


def test_filters_and_pages_of_runs(
    open_page: Callable[..., Page], api: Api, tmp_path: Path
) -> None:
    flag = tmp_path / "up"
    flag.touch()
    done = [api.start("checkout", f"order-{n}", str(flag), key=f"k{n}") for n in range(3)]
    for run in done:
        api.wait_for(run["id"], "completed")
    broken = api.start("mischief", "plain text")
    api.wait_for(broken["id"], "failed")

    page = open_page("#/runs?limit=2")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(broken["id"])  # newest first
    expect(rows.last).to_contain_text(done[2]["id"])
    page.get_by_role("button", name="Older →").click()
    expect(page.locator(".pager .page")).to_have_text("Page 2")
    expect(rows.first).to_contain_text(done[1]["id"])
    expect(rows.last).to_contain_text(done[0]["id"])
    expect(page.get_by_role("button", name="Older →")).to_be_disabled()
    page.get_by_role("button", name="← Newer").click()
    expect(page.locator(".pager .page")).to_have_text("Page 1")
    expect(rows.first).to_contain_text(broken["id"])

    page.get_by_label("Status", exact=True).select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(run_link(page, broken["id"])).to_be_visible()

    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Key", exact=True).fill("k1")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(run_link(page, done[1]["id"])).to_be_visible()

    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Workflow", exact=True).fill("mischief")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    expect(page.locator(".counts button[data-status='completed'] .count-value")).to_have_text("0")

    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Created before").fill("2000-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.runs tbody")).to_contain_text("No runs match these filters.")


# -- operator actions -----------------------------------------------------------------------


def test_pause_resume_send_a_message_and_terminate(
    open_page: Callable[..., Page], api: Api
) -> None:
    waiting = api.start("approval", "expense 88")
    api.wait_for(waiting["id"], "running")
    page = open_page(f"#/runs/{quote(waiting['id'], safe='')}")
    head = page.locator(".head-status")
    expect(head).to_have_text("running")

    page.get_by_role("button", name="Pause").click()
    expect(head).to_have_text("paused")
    page.get_by_role("button", name="Resume").click()
    expect(head).to_have_text("running")

    page.get_by_text("Send a message…").click()
    page.get_by_label("Topic").fill("decision")
    page.get_by_label("Message (JSON)").fill("{not json")
    page.get_by_role("button", name="Send message").click()
    expect(page.locator("section.actions .error")).to_contain_text("not valid JSON")
    page.get_by_label("Message (JSON)").fill('"approved"')
    page.get_by_role("button", name="Send message").click()
    expect(head).to_have_text("completed")
    expect(page.locator("section.io")).to_contain_text("expense 88: approved")

    other = api.start("approval", "expense 99")
    api.wait_for(other["id"], "running")
    page.goto(f"{server_of(page)}#/runs/{quote(other['id'], safe='')}")
    expect(head).to_have_text("running")
    terminate = page.get_by_role("button", name="Terminate")
    terminate.click()
    page.get_by_role("button", name="Really terminate?").click()
    expect(head).to_have_text("terminated")
    assert api.run(other["id"])["status"] == "terminated"


def test_fork_from_the_step_chosen_in_the_timeline(
    open_page: Callable[..., Page], api: Api, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    failed = api.start("checkout", "order-5", str(flag))
    api.wait_for(failed["id"], "failed")
    page = open_page(f"#/runs/{quote(failed['id'], safe='')}")
    fork = page.locator("button.action-fork")
    expect(fork).to_be_disabled()
    page.get_by_label("Fork from step 1").check()
    expect(fork).to_have_text("Fork from step 1 (charge)")
    flag.touch()
    fork.click()
    expect(page.locator(".run-id")).not_to_have_text(failed["id"])
    expect(page.locator(".head-status")).to_have_text("completed")
    forked = page.locator(".run-id").inner_text()
    assert api.run(forked)["status"] == "completed"
    assert api.run(failed["id"])["status"] == "failed"  # the original is untouched


def test_the_api_error_message_is_shown_when_an_action_is_refused(
    open_page: Callable[..., Page], api: Api, server: str, tmp_path: Path
) -> None:
    failed = api.start("checkout", "order-9", str(tmp_path / "missing"))
    api.wait_for(failed["id"], "failed")
    page = open_page(f"#/runs/{quote(failed['id'], safe='')}")
    retry = page.get_by_role("button", name="Retry")
    expect(retry).to_be_enabled()
    # The token loses its admin rights behind the page's back: the server refuses.
    page.evaluate(f"localStorage.setItem('perdure.token', {READ!r})")
    retry.click()
    refused = httpx.post(
        f"{server}/api/v1/runs/{quote(failed['id'], safe='')}/retry",
        headers={"Authorization": f"Bearer {READ}"},
        json={},
    )
    assert refused.status_code == 403
    expect(page.locator("section.actions .error")).to_have_text(refused.json()["error"]["message"])

    missing = "no-such-run"
    page.goto(f"{server}/#/runs/{missing}")
    answer = httpx.get(
        f"{server}/api/v1/runs/{missing}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert answer.status_code == 404
    expect(page.locator("main .error").first).to_have_text(answer.json()["error"]["message"])


# -- tokens ---------------------------------------------------------------------------------


def test_a_read_token_sees_runs_but_no_actions(
    open_page: Callable[..., Page], api: Api, tmp_path: Path
) -> None:
    failed = api.start("checkout", "order-3", str(tmp_path / "missing"))
    api.wait_for(failed["id"], "failed")
    page = open_page(f"#/runs/{quote(failed['id'], safe='')}", token=READ)
    expect(page.locator("#scope")).to_have_text("read-only token")
    expect(page.locator(".head-status")).to_have_text("failed")
    expect(step(page, 1).locator("p.step-error")).to_contain_text("payment gateway is down")
    expect(page.get_by_text("Read-only token: actions are hidden.")).to_be_visible()
    for name in ("Retry", "Cancel", "Pause", "Resume", "Terminate", "Delete", "Send message"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_label("Fork from step 1")).to_have_count(0)


def test_the_ui_asks_for_a_token_when_the_api_answers_401(
    open_page: Callable[..., Page], api: Api
) -> None:
    run = api.start("mischief", "boom")
    page = open_page("#/runs", token=None)
    dialog = page.get_by_role("dialog", name="API token")
    expect(dialog).to_be_visible()
    expect(page.locator("#scope")).to_have_text("no token")

    page.get_by_label("Token", exact=True).fill("not-a-token")
    page.get_by_role("button", name="Use token").click()
    expect(dialog).to_be_visible()  # refused again: asked again, with the server's reason
    expect(page.locator("#token-reason")).to_contain_text("The server refused the request")

    page.get_by_label("Token", exact=True).fill(ADMIN)
    page.get_by_role("button", name="Use token").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#scope")).to_have_text("admin token")
    expect(run_link(page, run["id"])).to_be_visible()
    assert page.evaluate("localStorage.getItem('perdure.token')") == ADMIN

    page.reload()  # kept in this browser
    expect(run_link(page, run["id"])).to_be_visible()
    expect(dialog).to_be_hidden()


# -- definitions ----------------------------------------------------------------------------


def test_definitions_draw_a_dag_and_a_state_machine_as_svg(open_page: Callable[..., Page]) -> None:
    page = open_page("#/definitions")
    dag = page.locator("article.definition[data-name='orders'] svg.graph")
    expect(dag.locator("g.node")).to_have_count(5)
    expect(dag.locator("path.edge")).to_have_count(5)
    expect(dag.locator("path.edge-on_failure")).to_have_count(1)
    expect(dag.locator("g.node-handler text")).to_have_text("refund")
    tops = {
        name: dag.locator(f"g.node[data-node='{name}'] rect").bounding_box()
        for name in ("validate", "pack", "bill", "deliver", "refund")
    }
    y = {name: box["y"] for name, box in tops.items() if box is not None}
    assert y["validate"] < y["pack"] == y["bill"] < y["deliver"] < y["refund"]  # layered

    machine = page.locator("article.definition[data-name='signup'] svg.graph")
    for status in ("NEW", "VERIFIED", "ACTIVE", "REJECTED"):
        expect(machine.locator(f"g.node[data-node='{status}'] text")).to_have_text(status)
    expect(machine.locator("g.node-terminal text")).to_have_text("ACTIVE")
    expect(machine.locator("path.edge")).to_have_count(6)  # five transitions and the start
    expect(machine.locator("text.edge-label")).to_contain_text(
        ["verify", "verify", "activate", "timeout after 7d", "callback: appeal"]
    )

    checkout = page.locator("article.definition[data-name='checkout']")
    expect(checkout.locator(".signature code")).to_have_text("checkout(order, flag)")

    page.locator("article.definition[data-name='orders']").get_by_text("Mermaid source").click()
    expect(
        page.locator("article.definition[data-name='orders'] pre.mermaid-source")
    ).to_contain_text("flowchart")


def test_a_run_page_draws_what_the_run_did(open_page: Callable[..., Page], api: Api) -> None:
    dag_run = api.start("orders", {"amount": 3})
    api.wait_for(dag_run["id"], "completed")
    page = open_page(f"#/runs/{quote(dag_run['id'], safe='')}")
    graph = page.locator("section.graph svg.graph")
    expect(graph.locator("g.node.state-completed")).to_have_count(4)  # refund never ran
    expect(graph.locator("g.node[data-node='refund']")).not_to_have_class(re.compile("state-"))


# -- escaping -------------------------------------------------------------------------------


def test_markup_in_a_run_id_or_an_error_is_shown_as_text(
    open_page: Callable[..., Page], api: Api
) -> None:
    run_id = "<script>window.__xss=3</script>"
    run = api.start("mischief", id=run_id)
    api.wait_for(run["id"], "failed")

    page = open_page("#/runs")
    expect(run_link(page, run_id)).to_be_visible()
    row = page.locator("table.runs tbody tr", has=run_link(page, run_id))
    expect(row.locator("td.err")).to_contain_text(uiapp.HTML_ERROR[:40])

    run_link(page, run_id).click()
    expect(page.locator(".run-id")).to_have_text(run_id)
    expect(page.locator("section.run-error")).to_contain_text(uiapp.HTML_ERROR)
    expect(step(page, 0).locator("p.step-error")).to_contain_text(uiapp.HTML_ERROR)
    assert page.evaluate("window.__xss") is None
    assert page.locator("main script, main img").count() == 0
    assert page.title().startswith("failed · <script>")


def test_the_ui_sources_parse_no_markup_and_load_nothing_from_elsewhere() -> None:
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"
    )
    external = re.compile(r"https?://(?!www\.w3\.org/2000/svg)")
    for path in sorted(UI.rglob("*")):
        if path.suffix not in (".js", ".html", ".css"):
            continue
        text = path.read_text()
        assert not forbidden.search(text), f"{path.name} builds markup from strings"
        assert not external.search(text), f"{path.name} refers to another host"
