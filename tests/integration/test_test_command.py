"""``./test`` with arguments (README: ``./test tests/unit -k dea``) stops the PostgreSQL cluster it started.

It used to ``exec`` pytest, which replaced the shell holding the EXIT trap: every such run left a cluster running
(seven were found on the development machine after one evening).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _postgres_serving(folder: str) -> bool:
    found = subprocess.run(["pgrep", "-f", f"postgres -D {folder}/data"], capture_output=True, text=True)
    return found.returncode == 0


@pytest.mark.skipif(not shutil.which("pgrep"), reason="needs pgrep")
@pytest.mark.parametrize("pytest_status", [0, 1])
def test_a_run_with_arguments_stops_its_postgresql_cluster(pytest_status):
    env = {k: v for k, v in os.environ.items() if k != "CSOS_TEST_PG_URL"}  # so it starts a cluster of its own
    target = "tests/unit/test_architecture.py" if pytest_status == 0 else "tests/unit/no_such_test_file.py"
    done = subprocess.run(["./test", "-q", "--collect-only", "-p", "no:cacheprovider", target], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    started = re.search(r"postgres-cluster: running on \S+, data in (\S+) ", done.stderr)
    if started is None:
        pytest.skip(f"no PostgreSQL cluster could be started here: {done.stderr[-300:]}")
    assert (done.returncode == 0) == (pytest_status == 0), done.stdout[-500:]
    folder = started.group(1)
    for _ in range(50):  # pg_ctl stop waits for the server; give the process table a moment
        if not _postgres_serving(folder):
            break
        time.sleep(0.1)
    assert not _postgres_serving(folder), f"the cluster in {folder} is still running"
    assert not Path(folder).exists()
