"""The load test at N = 10, as CI runs it: bounded, zero errors, and it cleans up after itself."""
import json
import pwd
import subprocess
import sys

import pytest
from course_hub import paths
from inst_helpers import REPO_ROOT

from bench import load_test


@pytest.mark.skipif(not paths.PROXY_COMMAND.exists(),
                    reason="configurable-http-proxy missing: run deploy/install.sh --no-start")
@pytest.mark.timeout(900)
def test_ten_students_at_once(scratch):
    report_path = scratch / "load-10.json"
    # The script bounds itself (--timeout for the class); the subprocess timeout is the backstop.
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load_test", "-n", "10", "--timeout", "480", "--json", str(report_path)],
        capture_output=True, text=True, timeout=840, cwd=REPO_ROOT,
    )
    print(proc.stdout)
    report = json.loads(report_path.read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["errors"] == 0 and report["students"] == 10
    first = report["first_result_s"]
    assert 0 < first["median"] <= first["p95"] <= first["max"] < 480
    assert report["peak_mb"]["hub"] > 50 and report["peak_mb"]["proxy"] > 20
    assert report["peak_student_processes"] >= 20  # a server and a kernel each
    assert report["student_mb_each"] > 100
    # Nothing of the run is left: no account of its prefix.
    prefix = report["account_prefix"]
    assert not [entry.pw_name for entry in pwd.getpwall() if entry.pw_name.startswith(prefix)]


def test_percentile_interpolates_between_ranks():
    assert load_test.percentile([4, 1, 3, 2], 0.5) == 2.5
    assert load_test.percentile(list(range(1, 21)), 0.95) == pytest.approx(19.05)
    assert load_test.percentile([7], 0.95) == 7
