"""The README's model table is generated from the code and must not go stale."""
import subprocess
import sys
from pathlib import Path

from fixtures import CLI_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]


def test_readme_model_table_matches_code():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "model_table.py"), "--check",
                        str(ROOT / "README.md")], capture_output=True, text=True,
                       timeout=CLI_TIMEOUT)
    assert r.returncode == 0, r.stderr


def test_ci_runs_the_readme_test_command():
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.lstrip().startswith("#")]
    assert any("make test" in ln for ln in ci), ci
    assert "make test" in (ROOT / "README.md").read_text()
