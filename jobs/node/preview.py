"""A review job's preview, published where every web server can stream it.

The render itself is the engine's (``engines.base.preview_template``: the
"Draft Settings" template, half resolution) and jobs.node.render encodes it
with ``presets.PREVIEW``. Here the small H.264 moves into the ``previews``
folder of RENDER_OUTPUT_DIR (named by job id: it is the manager's file, not a
delivery) and JobPreview records it with a poster frame. Retention deletes
both with the job.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from jobs.models import Job, JobPreview
from jobs.node.engines import thumbnails
from jobs.node.publish import publish
from jobs.submission.paths import PathError, output_file, output_relative

log = logging.getLogger(__name__)

FOLDER = "previews"


def folder() -> Path:
    return Path(settings.RENDER_OUTPUT_DIR) / FOLDER


def store(job: Job, result: Path) -> JobPreview:
    """Publish the encoded preview ``result`` of ``job`` and record it."""
    poster = thumbnails.grab(job, result)
    if result.exists():  # not yet published (a retry after a database error finds it moved)
        publish(result, folder(), f"{job.pk.hex}{result.suffix.lower()}", tag=job.lease.hex[:12])
    target = folder() / f"{job.pk.hex}{result.suffix.lower()}"
    jpeg, width, height = poster if poster else (None, None, None)
    made, _ = JobPreview.objects.update_or_create(job_id=job.pk, defaults={
        # Relative to RENDER_OUTPUT_DIR: the web server that streams it has its own.
        "path": output_relative(target), "size": target.stat().st_size, "jpeg": jpeg,
        "width": width,
        "height": height, "created_at": timezone.now()})
    return made


def remove_files(job_ids) -> int:
    """Delete the preview videos of ``job_ids`` (retention); returns how many went."""
    removed = 0
    for stored in JobPreview.objects.filter(job_id__in=list(job_ids)).values_list("path",
                                                                                  flat=True):
        try:
            path = output_file(stored)
        except PathError:
            continue  # not in this machine's output folder
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:  # held open by a player or Dropbox on Windows
            log.warning("could not delete the preview %s: %s", path, exc)
    return removed
