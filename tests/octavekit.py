"""Octave, the free MATLAB-language interpreter, for tests that check what MATLAB would see.

Debian's Octave is installed with ``deploy/install.sh --test-tools``; tests that need it are
marked ``@needs_octave`` and import this module directly (``import octavekit``).
"""
import shutil
import subprocess

import pytest

OCTAVE = shutil.which("octave-cli") or shutil.which("octave")
needs_octave = pytest.mark.skipif(OCTAVE is None, reason="octave is not installed "
                                  "(deploy/install.sh --test-tools installs it)")


def run_octave(script, cwd, timeout=600):
    """Run MATLAB-language ``script`` in folder ``cwd``; return what it printed.

    The generous timeout is for a busy machine: Octave starts in about a second.
    """
    result = subprocess.run([OCTAVE, "--no-gui", "--no-window-system", "--quiet", "--norc",
                             "--eval", script], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"Octave failed:\n{result.stderr}"
    return result.stdout
