"""API tokens (scenario F3): without a token, 401; with a read token, reads only (403
otherwise); with an admin token, everything. Tokens come from $PERDURE_API_TOKENS and
a tokens file; ``serve`` refuses unsafe settings and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpkit import ADMIN, READ, SERVER_BACKENDS, build_app, client, running_server

import perdure
from perdure.errors import ConfigurationError
from perdure.server import create_app, load_tokens, serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=SERVER_BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(url: str, tmp_path: Path) -> Iterator[str]:
    with running_server(build_app(url, tmp_path)) as base:
        yield base


def code(answer: httpx.Response) -> str:
    return str(answer.json()["error"]["code"])


def test_without_a_token_the_api_answers_401_and_with_one_it_works(server: str) -> None:
    start = {"workflow": "greet", "args": ["ann"], "id": "g"}
    with client(server, token=None) as anonymous:
        answer = anonymous.get("/runs")
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert code(answer) == "unauthorized"
        assert "Authorization: Bearer" in answer.json()["error"]["message"]
        assert anonymous.post("/runs", json=start).status_code == 401
        assert anonymous.get("/runs/g").status_code == 401  # nothing said about runs
        assert anonymous.get("/no/such/path").status_code == 401
        assert anonymous.get("/health").json()["status"] == "ok"
        assert anonymous.get("/openapi.json").json()["openapi"] == "3.1.0"
    for header in ("Bearer not-a-token", "Basic YWRtaW46YWRtaW4=", "Bearer", ADMIN):
        answer = httpx.get(f"{server}/api/v1/runs", headers={"Authorization": header})
        assert answer.status_code == 401, header
        assert answer.headers["www-authenticate"].startswith("Bearer")
    with client(server, ADMIN) as admin:
        assert admin.get("/runs").json()["runs"] == []  # the refused start started nothing
        assert admin.post("/runs", json=start).status_code == 201
        assert admin.get("/whoami").json() == {"scope": "admin", "auth": True}
        assert admin.delete("/runs/nothing").status_code == 404


def test_a_read_token_reads_and_is_refused_every_change(server: str) -> None:
    with client(server, ADMIN) as admin:
        assert admin.post("/runs", json={"workflow": "nap", "args": [3600], "id": "n"}).is_success
    with client(server, READ) as reader:
        assert reader.get("/whoami").json() == {"scope": "read", "auth": True}
        assert [r["id"] for r in reader.get("/runs").json()["runs"]] == ["n"]
        assert reader.get("/runs/n/journal").status_code == 200
        assert reader.get("/definitions").status_code == 200
        refusals = [
            reader.post("/runs", json={"workflow": "greet", "args": ["x"]}),
            reader.post("/runs/n/cancel"),
            reader.post("/runs/n/terminate", json={"reason": "x"}),
            reader.post("/runs/n/messages", json={"topic": None}),
            reader.post("/runs/n/fork", json={"from_step": 0}),
            reader.delete("/runs/n"),
        ]
        for answer in refusals:
            assert answer.status_code == 403, answer.text
            assert code(answer) == "forbidden"
            assert "admin token" in answer.json()["error"]["message"]
        assert [r["status"] for r in reader.get("/runs").json()["runs"]] in (
            ["pending"],
            ["running"],
        )


def test_without_auth_everyone_is_admin(url: str, tmp_path: Path) -> None:
    with running_server(build_app(url, tmp_path), auth=False) as base, client(base, None) as api:
        assert api.get("/whoami").json() == {"scope": "admin", "auth": False}
        assert api.post("/runs", json={"workflow": "greet", "args": ["x"]}).status_code == 201


def test_the_web_ui_and_hooks_need_no_api_token(server: str) -> None:
    index = httpx.get(f"{server}/")
    if (Path(perdure.__file__).parent / "server" / "ui" / "index.html").exists():
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    else:
        assert index.status_code == 404 and index.json()["error"]["code"] == "not_found"
    hooked = httpx.post(f"{server}/hooks/greetings", json="bea")
    assert hooked.status_code == 201, hooked.text


# -- where tokens come from -----------------------------------------------------------------


def test_tokens_come_from_the_environment_and_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERDURE_API_TOKENS", " admin:env-admin , read:env-read,")
    path = tmp_path / "tokens"
    path.write_text("# who may do what\nadmin  file-admin\n\nread file-read  # the dashboard\n")
    assert load_tokens(str(path)) == {
        "env-admin": "admin",
        "env-read": "read",
        "file-admin": "admin",
        "file-read": "read",
    }
    monkeypatch.delenv("PERDURE_API_TOKENS")
    assert load_tokens() == {}


@pytest.mark.parametrize(
    ("env", "text", "message"),
    [
        ("admin-no-colon", "", "PERDURE_API_TOKENS entry 1"),
        ("writer:tok", "", "unknown scope 'writer'"),
        ("admin:", "", "non-empty string"),
        ("", "admin a\nadmin\n", "line 2: expected 'SCOPE TOKEN'"),
        ("", "read one two\n", "line 1"),
        ("", "root tok\n", "line 1: unknown scope 'root'"),
        ("admin:same", "read same\n", "given twice"),
    ],
)
def test_a_bad_token_entry_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str, text: str, message: str
) -> None:
    monkeypatch.setenv("PERDURE_API_TOKENS", env)
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_tokens(str(path))


def test_a_missing_tokens_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the tokens file"):
        load_tokens(str(tmp_path / "absent"))


def test_unsafe_settings_are_refused_before_anything_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = perdure.App("memory://")
    monkeypatch.delenv("PERDURE_API_TOKENS", raising=False)
    with pytest.raises(ConfigurationError, match="--no-auth for local use"):
        serve(app, port=0)
    with pytest.raises(ConfigurationError, match="PERDURE_API_TOKENS"):
        create_app(app, tokens={})
    with pytest.raises(ConfigurationError, match="refusing to serve without authentication"):
        serve(app, host="0.0.0.0", port=0, auth=False)
    with pytest.raises(ConfigurationError, match="unknown scope 'root'"):
        create_app(app, tokens={"t": "root"})
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(ConfigurationError, match=r"cannot listen on 127\.0\.0\.1"):
            serve(app, port=taken.getsockname()[1], tokens={"t": "admin"})
    finally:
        taken.close()


# -- serve() in a process of its own -------------------------------------------------------------

SERVER_SCRIPT = textwrap.dedent(
    """
    import sys

    import perdure
    from perdure.server import serve

    app = perdure.App(sys.argv[1])


    @app.workflow()
    async def hello(name: str) -> str:
        return f"hello {name}"


    serve(app, port=int(sys.argv[2]), tokens={"process-admin": "admin"}, log_level="warning")
    print("stopped", flush=True)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_runs_its_worker_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop: signal.Signals
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, f"sqlite:///{tmp_path / 'p.db'}", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api = client(f"http://127.0.0.1:{port}", "process-admin")
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if api.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.05)
        started = api.post("/runs", json={"workflow": "hello", "args": ["eve"], "id": "h"})
        assert started.status_code == 201, started.text
        deadline = time.monotonic() + 30
        while api.get("/runs/h").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the embedded worker did not run it"
            time.sleep(0.05)
        assert api.get("/runs/h").json()["result"] == "hello eve"
        api.close()
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == "stopped\n"
    assert "Traceback" not in err
