"""What the guard process (jobs.node.guard, which kills a render's tree when
the worker dies) adds to starting a render: the same tiny program started
directly and through RenderProcess, best of N each.

    python bench/guard_overhead.py [--rounds 10]

Target: under 0.25 s (it is paid once per render, before aerender starts).
Moved here from a timed unit test: a busy machine made that test fail while
nothing was wrong.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rendermanager.settings")
os.environ.setdefault("DEBUG", "true")

import django  # noqa: E402

django.setup()

from jobs.node.procs import RenderProcess  # noqa: E402

ARGV = [sys.executable, "-S", "-c", "pass"]


def direct() -> float:
    started = time.perf_counter()
    subprocess.run(ARGV, check=True)
    return time.perf_counter() - started


def guarded() -> float:
    started = time.perf_counter()
    render = RenderProcess(ARGV)
    while render.poll() is None:
        render.read(timeout=0.01)
    render.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    direct()  # warm the file cache so the comparison is fair
    plain = [direct() for _ in range(rounds)]
    through_guard = [guarded() for _ in range(rounds)]
    overhead = min(through_guard) - min(plain)
    print(f"direct: best {min(plain) * 1000:.0f} ms, guarded: best {min(through_guard) * 1000:.0f} "
          f"ms ({rounds} rounds each)")
    print(f"guard overhead per render: {overhead * 1000:.0f} ms (target < 250 ms: "
          f"{'met' if overhead < 0.25 else 'MISSED'})")


if __name__ == "__main__":
    main()
