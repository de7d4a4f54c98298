"""Repository-wide pytest setup.

Kernels that nbval starts for the notebooks are separate processes: they see the
``course_lib`` of this checkout (not a stale installed copy) only through
``PYTHONPATH``, so set it before any kernel starts.
"""
import os
import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parent
_existing = os.environ.get("PYTHONPATH", "")
if str(REPO_ROOT) not in _existing.split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), _existing) if p)
