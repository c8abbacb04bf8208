"""Promises the documentation makes that its examples do not show: versioning a run
whose journal already passed the patch point, holding and cancelling a held run, a
worker started on another database keeping its app's codec, and binary data in
pydantic models."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydantic
import pytest

import perdure


def sqlite_url(tmp_path: Path, name: str = "perdure.db") -> str:
    return f"sqlite:///{tmp_path / name}"


# -- code changed under runs in flight ----------------------------------------------------

# Two versions of two workflows. Each phase runs in a process of its own, as a deploy
# does; a held run's abandoned workflow task is then collected with its process.
DEPLOYS = textwrap.dedent(
    """
    import asyncio
    import gc
    import json
    import sys

    import perdure

    url, version, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = perdure.App(url, poll_interval=0.05, sticky_cache=False)
    ran = []
    SETTLED = ("completed", "failed", "cancelled", "held")


    @app.step(name="reserve")
    async def reserve() -> str:
        ran.append("reserve")
        return "reserved"


    @app.step(name="notify")
    async def notify() -> str:
        ran.append("notify")
        return "notified"


    @app.workflow(name="order")
    async def order() -> str:
        done = [await reserve()]
        if version == 2 and perdure.patched("notify-after-reserve"):
            done.append(await notify())
        perdure.set_event("stage", "reserved")
        done.append(await perdure.receive("ship"))
        return ",".join(done)


    @app.step(name="charge" if version == 1 else "charge_card")
    async def charge() -> str:
        return "charged"


    @app.workflow(name="pay")
    async def pay() -> str:
        receipt = await charge()
        await perdure.receive("go")
        return receipt


    async def settled(handle):
        async with asyncio.timeout(10):
            while (status := await handle.status()) not in SETTLED:
                await asyncio.sleep(0.02)
        return status


    async def main() -> dict:
        out = {}
        async with app:
            if (phase, version) == ("patch", 1):
                handle = await app.start("order", id="before-the-change")
                out["stage"] = await handle.get_event("stage", timeout=10)
            elif (phase, version) == ("patch", 2):
                before = app.handle("before-the-change")
                await before.send("ship", "shipped")
                out["status"] = await settled(before)
                info = await before.info()
                out["error"] = str(info.error)
                if out["status"] == "completed":
                    out["result"] = await before.result()
                after = await app.start("order", id="after-the-change")
                await after.send("ship", "shipped")
                out["new_result"] = await after.result(timeout=10)
            elif (phase, version) == ("held", 1):
                handle = await app.start("pay", id="held-1")
                async with asyncio.timeout(10):
                    while (await handle.info()).journal_len < 1:
                        await asyncio.sleep(0.02)
            elif (phase, version) == ("held", 2):
                handle = app.handle("held-1")
                await handle.send("go")
                out["status"] = await settled(handle)
                out["accepted"] = await handle.cancel("operator gave up on it")
                if out["accepted"]:
                    await asyncio.sleep(1.0)  # time enough for a worker to act on it
                out["after_cancel"] = await handle.status()
        out["ran"] = ran
        return out


    print(json.dumps(asyncio.run(main())))
    gc.collect()  # finalize what the runs left behind while logging still works
    """
)


def deploy(tmp_path: Path, version: int, phase: str) -> dict[str, Any]:
    """Run one phase of ``DEPLOYS`` with code version 1 or 2; returns what it reports,
    and what it logged under ``"log"``."""
    script = tmp_path / "deploys.py"
    if not script.exists():
        script.write_text(DEPLOYS)
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, str(script), sqlite_url(tmp_path), str(version), phase],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    report["log"] = done.stderr
    return report


def test_patched_is_false_for_a_run_that_recorded_past_the_patch_point(tmp_path: Path) -> None:
    # The run set its event (after the patch point) before the new code existed, so it
    # must keep the old branch; a run started on the new code takes the new one.
    before_deploy = deploy(tmp_path, 1, "patch")
    assert before_deploy["stage"] == "reserved" and before_deploy["ran"] == ["reserve"]
    after_deploy = deploy(tmp_path, 2, "patch")
    assert after_deploy["status"] == "completed", after_deploy["error"]
    assert after_deploy["result"] == "reserved,shipped"
    assert after_deploy["new_result"] == "reserved,notified,shipped"
    assert after_deploy["ran"] == ["reserve", "notify"]


def test_a_cancel_accepted_for_a_held_run_ends_it(tmp_path: Path) -> None:
    deploy(tmp_path, 1, "held")
    after_deploy = deploy(tmp_path, 2, "held")  # the recorded step name no longer matches
    assert after_deploy["status"] == "held"
    # Either refuse the cancel, or carry it out: accepting it and leaving the run held
    # forever tells the caller it is being cancelled when it never will be.
    if after_deploy["accepted"]:
        assert after_deploy["after_cancel"] == "cancelled"
    else:
        assert after_deploy["after_cancel"] == "held"


def test_holding_a_run_leaves_no_unretrieved_task_error_behind(tmp_path: Path) -> None:
    # The hold is logged once, as an error naming the run. The workflow task it
    # abandoned must not surface later as "Task exception was never retrieved", at
    # whatever moment the garbage collector finalizes it.
    deploy(tmp_path, 1, "held")
    after_deploy = deploy(tmp_path, 2, "held")
    assert after_deploy["status"] == "held"
    assert "is not deterministic at position 0" in after_deploy["log"]
    assert "never retrieved" not in after_deploy["log"]


# -- perdure worker --database ---------------------------------------------------------

ZIPPED_APP = textwrap.dedent(
    """
    import zlib

    import perdure


    class Zlib:
        def encode(self, data: bytes) -> bytes:
            return zlib.compress(data)

        def decode(self, data: bytes) -> bytes:
            return zlib.decompress(data)


    def build(url: str) -> perdure.App:
        app = perdure.App(url, codec=Zlib(), poll_interval=0.05)

        @app.workflow()
        async def greet(name: str) -> str:
            return f"hello {name}"

        return app


    app = build("sqlite:///configured-in-code.db")
    """
)


def perdure_command() -> list[str]:
    script = Path(sys.executable).parent / "perdure"
    return [str(script)] if script.exists() else [sys.executable, "-m", "perdure.cli"]


@contextmanager
def worker_process(args: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    env = dict(os.environ)
    env.pop("PERDURE_DATABASE_URL", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.Popen(
        [*perdure_command(), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def test_worker_database_option_keeps_the_apps_codec(tmp_path: Path) -> None:
    # The worker serves the app's workflows on another database; everything else about
    # the app, its codec first, must stay, or it cannot read what its clients write.
    (tmp_path / "zipped.py").write_text(ZIPPED_APP)
    spec = importlib.util.spec_from_file_location("zipped", tmp_path / "zipped.py")
    assert spec is not None and spec.loader is not None
    zipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zipped)
    url = sqlite_url(tmp_path, "elsewhere.db")
    client: perdure.App = zipped.build(url)
    with worker_process(["worker", "zipped:app", "--database", url], tmp_path):
        try:
            handle: perdure.Handle[str] = await client.start("greet", "ada")
            assert await handle.result(timeout=20) == "hello ada"
        finally:
            await client.close()


# -- payloads ---------------------------------------------------------------------------


class Attachment(pydantic.BaseModel):
    # A model's own settings decide how it encodes bytes; base64 keeps binary data safe.
    model_config = pydantic.ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    name: str
    content: bytes


class RawAttachment(pydantic.BaseModel):
    name: str
    content: bytes


async def test_a_pydantic_model_with_binary_bytes_is_a_payload(app: perdure.App) -> None:
    @app.workflow()
    async def archive(doc: Attachment) -> Attachment:
        return doc

    doc = Attachment(name="logo.png", content=b"\x89PNG\r\n\x1a\n\xff\x00")
    async with app:
        handle = await app.start(archive, doc)
        assert await handle.result(timeout=10) == doc


async def test_a_model_that_cannot_hold_binary_bytes_is_refused_with_the_fix(
    app: perdure.App,
) -> None:
    @app.workflow()
    async def archive_raw(doc: RawAttachment) -> None:
        return None

    doc = RawAttachment(name="logo.png", content=b"\x89PNG\xff\x00")
    with pytest.raises(perdure.SerializationError, match=r"argument 'doc'.*ser_json_bytes"):
        await app.start(archive_raw, doc)
    assert [run async for run in app.list_runs()] == []
