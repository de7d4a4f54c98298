"""Not part of the suite (not a test_*.py file): test_freshroot_cleanup.py runs it in a pytest of
its own, waits until its fresh root is mounted with a process inside, then interrupts or kills
that pytest and checks what is left.
"""
import json
import os
import pathlib
import subprocess
import time

from tests.freshroot import freshroot
from tests.hub import hubkit


def test_wait_inside_a_fresh_root(fresh_root):
    # A process that leaves its parent's session and outlives it, as the hub rc.local starts does.
    subprocess.run(fresh_root.command("setsid sleep 900 </dev/null >/dev/null 2>&1 &"), check=True)
    hubkit.wait_for(lambda: freshroot.processes_in(fresh_root.root), 60, what="the sleeper inside the root")
    pathlib.Path(os.environ["FRESHROOT_PROBE_STATE"]).write_text(
        json.dumps({"run_dir": str(fresh_root.run_dir), "root": str(fresh_root.root)}))
    time.sleep(900)  # until interrupted
