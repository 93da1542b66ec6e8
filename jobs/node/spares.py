"""Render processes started ahead of their job, so that their start-up is off the
critical path.

Every render still runs in a process of its own (a crash or a leak cannot
outlive the job). What moves is when that process starts: the render node
keeps one spare ready (started while the previous render runs, or while the
node is idle), and hands it the job the moment one is claimed
(``RenderProcess.hand``). For nexrender the spare is node.js with
@nexrender/core loaded (engines/nexrender_launcher.js); for aerender it is
the guard (jobs/node/guard.py), Python and psutil loaded, waiting to start
aerender.

A spare is only used if it still fits: started for the same program with the
same environment (settings may have changed), younger than
``MAX_AGE_SECONDS`` (its program may have been updated on disk) and alive.
Otherwise it is killed and the render starts a fresh process, handed its job
at once: the same path, only without the head start. A spare carries a
marker of its own (``<node>/spare/<id>``), so that a restarted node kills
what its predecessor left waiting, like any render.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from jobs.node.procs import SPARE_MARK, RenderProcess

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 600.0
# After a spare died while waiting (its program missing or broken: NODE_BINARY,
# say), the next one starts this much later, not at every idle poll; a render
# meanwhile starts a fresh process, and reports what is wrong.
RETRY_DEAD_SECONDS = 60.0
LAUNCH_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class SpareSpec:
    """What a spare runs before its job: ``argv`` (a launcher, or nothing: the
    guard alone) with ``env`` in ``cwd``."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str

    @classmethod
    def make(cls, argv, env: dict[str, str], cwd) -> SpareSpec:
        return cls(tuple(str(arg) for arg in argv), tuple(sorted(env.items())), str(cwd))


class Spares:
    """The spare of one render node (used by its render loop's thread only)."""

    def __init__(self, node_name: str):
        self.node_name = node_name
        self.spec: SpareSpec | None = None
        self.proc: RenderProcess | None = None
        self.handed = 0  # renders that started in a spare
        self.fresh = 0  # renders that had to start a process of their own
        self.died_at: float | None = None  # when a spare of ``spec`` was found dead

    def prepare(self, spec: SpareSpec | None) -> None:
        """Have a spare for ``spec`` waiting (a different or dead one is replaced)."""
        if spec is None:
            return
        if self.proc is not None and self._usable(spec):
            return
        self.discard()
        if spec == self.spec and self.died_at is not None and \
                time.monotonic() - self.died_at < RETRY_DEAD_SECONDS:
            return
        self.spec, self.proc, self.died_at = spec, self._spawn(spec), None

    def refill(self) -> None:
        """Start the next spare, like the last one, if none is waiting."""
        if self.proc is None and self.spec is not None:
            self.prepare(self.spec)

    def start(self, command, marker: str, gated: bool = False) -> RenderProcess | None:
        """The process of ``command`` (a RenderCommand with a ``spare``), given its
        job: the waiting spare if it fits, else a fresh one.

        ``gated`` (a job claimed ahead, jobs.node.worker): handed to wait at its gate
        (RenderProcess.open_gate) before it starts aerender; None if no process
        could be handed so (the render then starts later, as any other)."""
        spec = command.spare
        proc = None
        if gated and command.handoff is None:
            return None
        if self.proc is not None and self._usable(spec):
            proc, self.proc = self.proc, None
            if not self._hand(proc, command, marker, gated):
                log.warning("the spare render process %s died before its job came; "
                            "starting a fresh one", proc.pid)
                proc.close()
                proc = None
            else:
                self.handed += 1
                self.died_at = None
        if proc is None:
            self.discard()
            proc = self._spawn(spec)
            if not self._hand(proc, command, marker, gated):
                proc.close()
                if gated:
                    return None
                # Nothing else to try: a plain start, whose failure the render reports.
                proc = RenderProcess(command.argv, command.env, command.cwd, marker)
            self.fresh += 1
        self.spec = spec
        return proc

    def discard(self) -> None:
        """Kill the waiting spare, if any."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            proc.close()

    close = discard

    # --- inside ----------------------------------------------------------------------

    def _usable(self, spec: SpareSpec) -> bool:
        proc = self.proc
        if spec != self.spec:
            return False
        if proc.exited():
            lines = proc.read(0)
            log.warning("the spare render process %s ended while waiting (exit code %s)%s; "
                        "the next one in %g s", proc.pid, proc.returncode,
                        (": " + " | ".join(lines[-5:])) if lines else "", RETRY_DEAD_SECONDS)
            self.died_at = time.monotonic()
            return False
        if spec.argv and not proc.child_alive():
            if time.monotonic() - proc.started_at < LAUNCH_GRACE_SECONDS:
                # Its guard is still starting the launcher (a busy machine): not
                # dead; a launcher that fails makes the guard exit (above).
                return True
            log.warning("the launcher of spare render process %s is gone; the next one in "
                        "%g s", proc.pid, RETRY_DEAD_SECONDS)
            self.died_at = time.monotonic()
            return False
        return time.monotonic() - proc.started_at < MAX_AGE_SECONDS

    def _spawn(self, spec: SpareSpec) -> RenderProcess:
        Path(spec.cwd).mkdir(parents=True, exist_ok=True)
        marker = f"{self.node_name}{SPARE_MARK}{uuid.uuid4().hex}"
        return RenderProcess(spec.argv, dict(spec.env), spec.cwd, marker, wait=True)

    @staticmethod
    def _hand(proc: RenderProcess, command, marker: str, gated: bool = False) -> bool:
        if command.handoff is not None:
            return proc.hand(marker, cwd=command.cwd, child_input=command.handoff,
                             gated=gated)
        return proc.hand(marker, argv=command.argv, cwd=command.cwd)
