"""Publishing a finished render into the output folder (inside Dropbox).

The file is first put beside its target under a name Dropbox ignores and that
is unique to the attempt (``.~<name>.<tag>.partial``), then renamed onto the
target in one step, so Dropbox never syncs a partial file and two attempts
never share one.

On Windows that rename fails while another program holds the previous file
open (Dropbox uploading it, a player showing it, an antivirus scan): it is
retried with backoff for PUBLISH_RETRY_SECONDS, then reported as a publish
failure of its own (PublishError), not as a crashed render. A file this
attempt did not write is never deleted: the partial is its own, and the
published target is withdrawn only while it still is the very file this
attempt put there.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from jobs.models import BatchRow, Job
from jobs.node.interrupt import checkpoint

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
COPY_CHUNK = 8 * 1024 * 1024
MAX_RETRY_PAUSE = 5.0
CHECK_SLICE = 0.2


class PublishError(Exception):
    """The output could not be put into the output folder; the message says why."""


class MoveInFailed(PublishError):
    """The finished file could not be taken from the work folder (or written into the
    output folder): on Windows, something may still hold it open."""


def output_name(job: Job, result: Path) -> str:
    if job.output_name:
        # A batch row: its own name, already safe and unique in its batch's folder
        # (jobs.submission.batches).
        return f"{job.output_name}{result.suffix.lower()}"
    stem = Path(job.display_name.replace("\\", "/")).stem or "render"
    stem = SAFE_NAME.sub("_", stem).strip(" .") or "render"
    return f"{stem[:80]}_{job.pk.hex[:8]}{result.suffix.lower()}"


def output_folder(job: Job) -> Path:
    """RENDER_OUTPUT_DIR, or for a batch row the batch's own folder in it (read
    with the claim, lifecycle.claim_next, else here)."""
    root = Path(settings.RENDER_OUTPUT_DIR)
    try:
        folder = job.batch_row.batch.folder
    except BatchRow.DoesNotExist:
        return root
    return root / folder if folder else root


@dataclass(frozen=True)
class Published:
    path: Path
    size: int
    identity: tuple

    def still_ours(self) -> bool:
        try:
            return _identity(self.path.stat()) == self.identity
        except OSError:
            return False

    def withdraw(self) -> bool:
        """Remove the published file if it still is the one this attempt wrote."""
        if not self.still_ours():
            return False
        try:
            self.path.unlink()
        except OSError as exc:
            log.warning("could not withdraw %s: %s", self.path, exc)
            return False
        return True


def _identity(stat: os.stat_result) -> tuple:
    # A rename keeps all of these, on NTFS (file ID) as on POSIX (inode).
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def publish(result: Path, folder: Path, name: str, tag: str,
            before_copy: Callable[[], object] | None = None) -> Published:
    """Move the finished ``result`` to ``folder/name``; ``tag`` is unique to the attempt.
    ``before_copy``: called once the move turns out to be a copy (another volume),
    which may take minutes, before it starts."""
    target = folder / name
    partial = folder / f".~{name}.{tag}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _move_in(result, partial, before_copy)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise MoveInFailed(f"cannot write into the output folder {folder}: "
                           f"{exc.strerror or exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        stat = partial.stat()
        _replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)  # ours: the name is this attempt's
        raise
    return Published(target, stat.st_size, _identity(stat))


def _move_in(result: Path, partial: Path, before_copy: Callable[[], object] | None = None) -> None:
    """Rename (same volume) or copy in chunks (another volume), stopping when asked."""
    try:
        os.replace(result, partial)
        return
    except OSError as exc:
        # EXDEV on POSIX; ERROR_NOT_SAME_DEVICE (17) on Windows.
        if exc.errno != errno.EXDEV and getattr(exc, "winerror", None) != 17:
            raise
    if before_copy is not None:
        before_copy()
    with open(result, "rb") as source, open(partial, "xb") as out:
        while chunk := source.read(COPY_CHUNK):
            out.write(chunk)
            checkpoint()
    result.unlink(missing_ok=True)


def _replace(partial: Path, target: Path) -> None:
    """``os.replace`` with retries while something holds the target (or the new
    file) open; PublishError when it keeps failing."""
    patience = settings.PUBLISH_RETRY_SECONDS
    began = time.monotonic()
    pause = 0.1
    tries = 0
    while True:
        tries += 1
        try:
            os.replace(partial, target)
            if tries > 1:
                log.info("published %s after %d tries (%.1f s)", target, tries,
                         time.monotonic() - began)
            return
        except OSError as exc:
            if not partial.exists():
                raise PublishError(f"the finished file vanished before it reached {target}") \
                    from exc
            waited = time.monotonic() - began
            if waited + pause > patience:
                raise PublishError(
                    f"cannot replace {target}: {exc.strerror or exc} — another program "
                    f"(Dropbox, a player) may hold it open; tried {tries} times in "
                    f"{waited:.0f} s") from exc
            if tries == 1:
                log.warning("cannot replace %s yet (%s); retrying for up to %g s", target,
                            exc.strerror or exc, patience)
            _sleep(pause)
            pause = min(pause * 2, MAX_RETRY_PAUSE)


def _sleep(seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(CHECK_SLICE, left))
        checkpoint()
