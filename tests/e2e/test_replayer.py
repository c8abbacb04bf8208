"""The replayer: recorded runs replayed against changed code, from the database or
from an exported file; and the operators' CLI commands, run as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import perdure


def build(url: str, *, renamed: bool = False) -> perdure.App:
    app = perdure.App(url, poll_interval=0.05)

    @app.step()
    async def fetch(n: int) -> int:
        return n + 1

    @app.step(name="fetch_v2" if renamed else "store")
    async def store(n: int) -> int:
        return n * 2

    @app.workflow()
    async def pipeline(n: int) -> int:
        first = await fetch(n)
        await perdure.receive("go")
        return await store(first)

    return app


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


async def test_replay_passes_for_the_same_code_and_names_the_divergence(
    url: str, tmp_path: Path
) -> None:
    app = build(url)
    async with app:
        done = await app.start("pipeline", 1, id="done")
        waiting = await app.start("pipeline", 5, id="waiting")
        await done.send("go")
        assert await done.result(timeout=10) == 4

        async with asyncio.timeout(10):
            while (await waiting.info()).journal_len < 1:
                await asyncio.sleep(0.01)

        for run_id in ("done", "waiting"):
            result = await app.replay(run_id)
            assert result.ok, result
            assert result.workflow == "pipeline"
        exported = await app.export_run("done")
        assert json.loads(json.dumps(exported)) == exported  # plain JSON
        still_waiting = await app.export_run("waiting")
        with pytest.raises(perdure.RunNotFound):
            await app.replay("nope")

    # The same histories against code where the second step was renamed.
    changed = build("memory://", renamed=True)
    result = changed.replay_file(write(tmp_path / "done.json", exported))
    assert not result.ok
    assert result.error is not None and result.error.position == 2
    assert "store" in str(result.error) and "fetch_v2" in str(result.error)
    assert "FAIL  done (pipeline)" in str(result)
    # A run still waiting before the renamed step replays fine: it has not reached it.
    assert changed.replay_file(write(tmp_path / "waiting.json", still_waiting)).ok
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(perdure.ConfigurationError, match="not an exported perdure run"):
        changed.replay_file(tmp_path / "bad.json")


MODULE = """
import perdure

app = perdure.App()


@app.step(retry=perdure.Retry(max_attempts=1))
async def charge(n: int) -> int:
    import os
    if not os.path.exists("fixed"):
        raise RuntimeError("card service down")
    return n * 100


@app.workflow()
async def order(n: int) -> int:
    return await charge(n)
"""


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "perdure"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "perdure.cli"]
    env = {
        **os.environ,
        "PERDURE_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}",
        "PYTHONPATH": str(tmp_path),
    }
    return subprocess.run(
        [*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


async def test_operators_commands_from_the_shell(tmp_path: Path) -> None:
    (tmp_path / "shop_ops.py").write_text(textwrap.dedent(MODULE))
    sys.path.insert(0, str(tmp_path))
    try:
        import shop_ops  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    app: perdure.App = shop_ops.app
    app.use_database(f"sqlite:///{tmp_path / 'ops.db'}")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        async with app:
            handle = await app.start("order", 3, id="o-1")
            with pytest.raises(perdure.RunFailed):
                await handle.result(timeout=10)
    finally:
        os.chdir(cwd)
    await app.close()

    migrated = cli(tmp_path, "migrate")
    assert migrated.returncode == 0 and migrated.stdout.endswith("ops.db: schema up to date\n")
    listed = cli(tmp_path, "runs", "list", "--status", "failed")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:3] == ["o-1", "order", "failed"]
    assert "card service down" in listed.stdout
    shown = cli(tmp_path, "runs", "show", "o-1", "--journal")
    assert shown.stdout.startswith("run o-1  order  failed") and " step " in shown.stdout

    refused = cli(tmp_path, "runs", "pause", "o-1")
    assert refused.returncode == 4
    assert "cannot pause run 'o-1': it is failed" in refused.stderr

    replayed = cli(tmp_path, "runs", "replay", "shop_ops:app", "o-1")
    assert replayed.returncode == 0, replayed.stderr
    assert "1 of 1 runs replay with this code" in replayed.stdout
    exported = cli(tmp_path, "runs", "export", "o-1")
    (tmp_path / "o-1.json").write_text(exported.stdout)
    from_file = cli(tmp_path, "runs", "replay", "shop_ops:app", "--file", "o-1.json")
    assert from_file.returncode == 0 and "ok    o-1 (order" in from_file.stdout

    (tmp_path / "fixed").touch()
    retried = cli(tmp_path, "runs", "retry", "o-1", "--reason", "card service back", "--by", "ops")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == "o-1: running\n"
    with_worker = subprocess.Popen(
        [sys.executable, "-c", "import shop_ops; shop_ops.app.run_worker()"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PERDURE_DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}",
            "PYTHONPATH": str(tmp_path),
        },
    )
    try:
        checker = perdure.App(f"sqlite:///{tmp_path / 'ops.db'}")
        assert await checker.handle("o-1").result(timeout=30) == 300
        await checker.close()
        workers = cli(tmp_path, "workers")
        assert workers.returncode == 0, workers.stderr
        assert f":{with_worker.pid}:" in workers.stdout and "order" in workers.stdout
    finally:
        with_worker.terminate()
        with_worker.wait(timeout=30)
    purged = cli(tmp_path, "runs", "purge", "--older-than", "0", "--yes")
    assert purged.stdout == "deleted 1 runs\n"
    missing = cli(tmp_path, "runs", "show", "o-1")
    assert missing.returncode == 3 and "no run with id 'o-1'" in missing.stderr
