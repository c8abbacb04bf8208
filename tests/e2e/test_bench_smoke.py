"""The benchmark workloads still run (tiny sizes, perdure only), so the suite in
bench/ cannot rot unnoticed. Nothing here is timed; the figures are only checked for
shape and for the correctness figures (W5: nothing lost)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
MARK = "@@RESULT "

TINY = {
    "w1": {"workflows": 5, "steps": 3},
    "w2": {"iterations": 5},
    "w3": {"width": 10},
    "w4": {"workflows": 50, "chunk": 25},
    "w5": {"workflows": 4, "steps": 5, "kill_after": 0.3},
}


def run_workload(name: str, tmp_path: Path) -> dict[str, object]:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "perdure_bench.py"),
            name,
            "--url",
            f"sqlite:///{tmp_path / 'bench.db'}?synchronous=normal",
            "--params",
            json.dumps(TINY[name]),
            "--workdir",
            str(tmp_path),
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    assert done.returncode == 0 and lines, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, object] = json.loads(lines[-1][len(MARK) :])
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_workload_runs(name: str, tmp_path: Path) -> None:
    result = run_workload(name, tmp_path)
    figures = result["figures"]
    assert isinstance(figures, dict) and figures
    assert result["engine"] == "perdure"
    if name == "w5":
        assert figures.get("lost") == 0, figures
