"""Publishing a finished render into the output folder (inside Dropbox)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from django.conf import settings

from jobs.models import BatchRow, Job

SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def output_name(job: Job, result: Path) -> str:
    if job.output_name:
        # A batch row: its own name, already safe and unique in its batch's folder
        # (jobs.submission.batches).
        return f"{job.output_name}{result.suffix.lower()}"
    stem = Path(job.display_name.replace("\\", "/")).stem or "render"
    stem = SAFE_NAME.sub("_", stem).strip(" .") or "render"
    return f"{stem[:80]}_{job.pk.hex[:8]}{result.suffix.lower()}"


def output_folder(job: Job) -> Path:
    """RENDER_OUTPUT_DIR, or for a batch row the batch's own folder in it."""
    root = Path(settings.RENDER_OUTPUT_DIR)
    folder = BatchRow.objects.filter(job_id=job.pk).values_list("batch__folder", flat=True).first()
    return root / folder if folder else root


def publish(result: Path, folder: Path, name: str) -> Path:
    """Move the finished file into the output folder in one atomic step.

    It is copied under a name Dropbox ignores (``.~*``) and then renamed, so
    Dropbox never syncs a partial file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    partial = folder / f".~{name}.partial"
    shutil.move(str(result), str(partial))
    os.replace(partial, target)
    return target
