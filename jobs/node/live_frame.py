"""The newest frame of a running image-sequence render, for the job page.

An image sequence is written frame by frame into the render's work folder on
the render node, where no web server can see it. While such a render runs,
a thread of the render (``FrameWatcher``) looks every LIVE_FRAME_SECONDS for
the newest finished frame, makes a small JPEG of it and stores it in
JobFrame; the job page shows it, refreshed by the render's progress updates.
The frame being written is skipped (the one before it is complete); when the
render ends, the last frame is taken. After completion the frame stays as the
job's picture: a zipped sequence has no poster frame.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs import media
from jobs.models import JobFrame
from jobs.node import outage
from jobs.node.engines import RenderError, thumbnails
from jobs.node.engines.base import AfterEffectsEngine, sequence_frames, template_config
from jobs.submission.nexrender_spec import is_image_sequence

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"(\d+)(?=\.[^.]+$)")


def frame_number(path: Path) -> int:
    """The frame number in ``result_00042.png``; 0 without one."""
    found = _NUMBER.search(path.name)
    return int(found.group(1)) if found else 0


class FrameWatcher:
    def __init__(self, job, folder: Path, template: dict,
                 interval: float | None = None):
        self.job = job
        self.folder = Path(folder)
        self.template = template
        self.interval = settings.LIVE_FRAME_SECONDS if interval is None else interval
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.sent: Path | None = None

    def start(self) -> FrameWatcher:
        self.thread = threading.Thread(target=self._loop, name=f"frames-{self.job.pk}",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self, last: bool = False) -> None:
        """Stop looking; ``last``: the render finished, so its newest frame is complete."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None
        if last:
            # A picture, not the job's fate: a database away now must not cost
            # the finished render (the render would be requeued).
            outage.best_effort("the last live frame", self.tick, finished=True)

    def _loop(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                # Skipped while the database is away; the next tick catches up.
                outage.best_effort("a live frame", self.tick)
        finally:
            connection.close()

    def tick(self, finished: bool = False) -> bool:
        """Store the newest complete frame if it is new; True if one was stored."""
        try:
            frames = sequence_frames(self.folder, self.template)
        except OSError:
            return False
        # The newest file may still be being written.
        complete = frames if finished else frames[:-1]
        if not complete or complete[-1] == self.sent:
            return False
        newest = complete[-1]
        try:
            made = thumbnails.still(newest)
        except (media.MediaError, OSError, subprocess.TimeoutExpired) as exc:
            log.info("no live frame of job %s from %s: %s", self.job.pk, newest.name, exc)
            return False
        if made is None:
            return False
        jpeg, width, height = made
        JobFrame.objects.update_or_create(job_id=self.job.pk, defaults={
            "jpeg": jpeg, "width": width, "height": height, "number": frame_number(newest),
            "updated_at": timezone.now()})
        self.sent = newest
        return True


def watch(engine, job, workdir: Path) -> FrameWatcher | None:
    """A started watcher for ``job``'s render in ``workdir``, if it renders a sequence."""
    if settings.LIVE_FRAME_SECONDS <= 0 or not isinstance(engine, AfterEffectsEngine):
        return None
    try:
        template = template_config(job)
    except RenderError:
        return None
    if not is_image_sequence(template):
        return None
    return FrameWatcher(job, engine.output_folder(job, Path(workdir)), template).start()
