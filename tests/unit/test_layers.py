"""Layers import downward only: the kernel knows no backend, and backends know no kernel."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "perdure"


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((SRC / folder).rglob("*.py"))


def test_the_workflow_kernel_imports_no_backend_worker_or_app() -> None:
    for path in modules("workflow"):
        bad = {
            m
            for m in imports_of(path)
            if m.startswith(
                (
                    "perdure.backends",
                    "perdure.worker",
                    "perdure.app",
                    "perdure.cli",
                    "perdure.client",
                )
            )
        }
        assert not bad, f"{path.name} imports {bad}"


def test_backends_import_only_records_errors_and_each_other() -> None:
    for path in modules("backends"):
        bad = {
            m
            for m in imports_of(path)
            if m.startswith("perdure.")
            and not m.startswith(("perdure.backends", "perdure.records", "perdure.errors"))
        }
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_no_module_outside_clock_reads_the_wall_clock_directly() -> None:
    allowed = {"clock.py", "demo.py"}
    for path in SRC.rglob("*.py"):
        if path.name in allowed:
            continue
        text = path.read_text()
        for needle in ("time.time()", "datetime.now(", "datetime.utcnow("):
            if needle in text:
                raise AssertionError(f"{path.relative_to(SRC)} calls {needle}")


def test_the_server_the_webhooks_and_the_cli_go_through_the_public_app() -> None:
    """HTTP, webhooks and CLI are clients of the App: no backend import, no
    ``app.backend`` but its URL, and the parts the CLI loads pull in no web framework."""
    surface = [*modules("server"), *modules("cli"), SRC / "webhooks.py"]
    for path in surface:
        bad = {m for m in imports_of(path) if m.startswith("perdure.backends")}
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"
        # Only the (password-masked) URL, to say where they work.
        used = re.findall(r"\.backend\.(\w+)", path.read_text())
        assert set(used) <= {"url"}, f"{path.relative_to(SRC)} uses app.backend.{used}"
    # A plain install (no perdure[server]) still runs the CLI: importing it, and the
    # server modules it uses, must not need Starlette or uvicorn.
    blocked = "import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None; "
    loads = "import perdure.cli, perdure.server, perdure.server.views, perdure.server.tokens"
    subprocess.run([sys.executable, "-c", blocked + loads], check=True)
