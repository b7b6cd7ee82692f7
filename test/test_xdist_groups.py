"""`make test`'s scheduling: the tests of one file run in one pytest-xdist worker (their module
fixtures, e.g. a node process, are made once) and test/hostile runs as one group."""
from __future__ import annotations

import json
import sys
import textwrap

from fixtures import CLI_TIMEOUT, REPO
from fixtures.xdist_groups import group_of
from test_train_utils import run, subprocess_env

TEST_FILE = textwrap.dedent("""
    import json, os, pytest

    @pytest.mark.parametrize("i", range(6))
    def test_where(i, request):
        with open(os.environ["WHERE_LOG"], "a") as f:
            f.write(json.dumps([request.node.nodeid, os.environ["PYTEST_XDIST_WORKER"]]) + "\\n")
""")


def test_each_file_and_the_hostile_suite_run_in_one_worker(tmp_path):
    files = ["test_a.py", "test_b.py", "test_c.py", "hostile/test_h1.py", "hostile/test_h2.py"]
    for name in files:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(TEST_FILE)
    log = tmp_path / "where.jsonl"
    env = subprocess_env(PYTHONPATH=REPO / "test", WHERE_LOG=log)
    res = run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
               "-p", "fixtures.xdist_groups", "-p", "no:cacheprovider", "--rootdir", tmp_path,
               tmp_path], timeout=CLI_TIMEOUT, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 6 * len(files)
    workers: dict[str, set] = {}
    for nodeid, worker in rows:
        workers.setdefault(group_of(nodeid), set()).add(worker)
    assert set(workers) == {"test_a.py", "test_b.py", "test_c.py", "hostile"}
    assert all(len(w) == 1 for w in workers.values()), workers
