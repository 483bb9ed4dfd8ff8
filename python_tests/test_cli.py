"""The command line's demo (what `make demo` runs) and its top-level errors."""

import re
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "dopfast", *args], capture_output=True, text=True, timeout=300)


def test_demo_prints_a_small_recovery_error():
    done = _run("demo", "--iters", "5000")
    assert done.returncode == 0, done.stderr
    err = float(re.search(r"relative recovery error .* = ([0-9.e+-]+)", done.stdout).group(1))
    assert err < 1e-4


def test_unknown_command():
    done = _run("fit")
    assert done.returncode == 2 and "invalid choice" in done.stderr
