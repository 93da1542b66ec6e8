"""Render history for estimates: what a job is (its history keys and frames),
and the latest completed renders of each key (``RenderStat``).

``on_transition`` records a render once the transaction that completed it
has committed (it reads the job as committed, so the history and the status
never disagree; a render node does it beside its render loop). Only completed
renders are recorded: a failed or cancelled attempt says
nothing about how long the job takes.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.fields.json import KT
from django.utils import timezone

from jobs import estimates
from jobs.models import Engine, Job, RenderStat, Status

# The Job columns a row is made of; JSON values come through KT() (the
# database extracts them) or values_of() (the same from a Job in memory).
FIELDS = ("id", "status", "priority", "created_at", "path_key", "engine", "frames_total",
          "frames_done", "eta_seconds", "last_output_at", "phase", "started_at", "user_id",
          "needs_preview")
JSON_VALUES = {
    # Not "composition": Job has a (shortened) column of that name.
    "template_composition": "config__template__composition",
    "frame_start": "config__template__frameStart",
    "frame_end": "config__template__frameEnd",
    "frame_increment": "config__template__frameIncrement",
    "timeline_width": "config__width",
    "timeline_height": "config__height",
    "timeline_fps": "config__fps",
    "timeline_duration": "config__duration",
    "width": "project__composition__width",
    "height": "project__composition__height",
}
TIMELINE = "timeline"
KEY_CHUNK = 500

log = logging.getLogger(__name__)


# --- Keys ------------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    text = "\x1f".join(parts)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


# Review previews (draft settings, half size) render at their own pace: their
# history is kept apart from the final renders'.
PREVIEW = "\x1fpreview"


def project_key(path_key: str, composition: str, preview: bool = False) -> str:
    """This composition of this project."""
    if not path_key:
        return ""
    return f"project:{_digest(path_key, composition.casefold() + (PREVIEW if preview else ''))}"


def composition_key(composition: str, size: tuple[int, int] | None,
                    preview: bool = False) -> str:
    """A composition name at a frame size, in any project (size unknown: "?")."""
    if not composition:
        return ""
    width, height = size or ("?", "?")
    name = composition.casefold() + (PREVIEW if preview else "")
    return f"comp:{_digest(name, f'{width}x{height}')}"


# --- Rows --------------------------------------------------------------------------------


def _number(value) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _whole(value) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _order_value(value, descending: bool):
    if isinstance(value, bool):
        value = int(value)
    elif isinstance(value, datetime):
        value = value.timestamp()
    elif isinstance(value, uuid.UUID):
        value = value.hex
    elif value is None:
        value = ""
    return -value if descending else value


def order_key(values: dict, order) -> tuple:
    """A row's place in claim order (``order``: lifecycle.QUEUE_ORDER) as a tuple."""
    return tuple(_order_value(values.get(name.lstrip("-")), name.startswith("-"))
                 for name in order)


def _frames(values: dict) -> int | None:
    if values.get("frames_total"):
        return int(values["frames_total"])
    if values.get("engine") == Engine.FFMPEG:
        fps, duration = _number(values.get("timeline_fps")), _number(values.get(
            "timeline_duration"))
        return max(1, round(fps * duration)) if fps and duration and duration > 0 else None
    start, end = _whole(values.get("frame_start")), _whole(values.get("frame_end"))
    step = max(1, _whole(values.get("frame_increment")) or 1)
    if start is not None and end is not None and end >= start:
        return (end - start) // step + 1
    return None


def make_row(values: dict, order=()) -> estimates.Row:
    """An estimator row from Job values (``rows()``, ``values_of()``).

    A review job's next render is its preview until the preview is rendered;
    once it awaits review, the next is the final render (after approval).
    """
    if values.get("status") == Status.AWAITING_REVIEW:
        values = {**values, "needs_preview": False}
    preview = bool(values.get("needs_preview"))
    if values.get("engine") == Engine.FFMPEG:
        composition = TIMELINE
        width, height = _whole(values.get("timeline_width")), _whole(values.get(
            "timeline_height"))
    else:
        composition = values.get("template_composition")
        composition = composition if isinstance(composition, str) else ""
        width, height = _whole(values.get("width")), _whole(values.get("height"))
    size = (width, height) if width and height else None
    path_key = values.get("path_key") or ""
    return estimates.Row(
        id=values.get("id"), status=values.get("status") or "",
        order=order_key(values, order) if order else (),
        project_key=project_key(path_key, composition, preview),
        comp_key=composition_key(composition, size, preview), composition=composition,
        size=size, preview=preview,
        frames=_frames(values), node=values.get("node_name") or "",
        started_at=values.get("started_at"), frames_done=values.get("frames_done") or 0,
        eta_seconds=values.get("eta_seconds"), progress_at=values.get("last_output_at"),
        phase=values.get("phase") or "", owner=values.get("user_id"))


def rows(jobs, order=()) -> list[estimates.Row]:
    """Rows of a Job queryset, JSON values extracted by the database."""
    found = jobs.values(*FIELDS, node_name=F("node__name"),
                        **{name: KT(path) for name, path in JSON_VALUES.items()})
    return [make_row(values, order) for values in found]


def _dig(data, *path):
    for step in path:
        if not isinstance(data, dict):
            return None
        data = data.get(step)
    return data


def values_of(job: Job, node_name: str | None = None) -> dict:
    """What ``rows()`` reads from the database, from a Job in memory (saved or not).
    ``node_name``: the name of its node when known (saves a query)."""
    values = {name: getattr(job, name, None) for name in FIELDS}
    if node_name is None:
        node_name = job.node.name if job.node_id else ""
    values["node_name"] = node_name
    for name, path in JSON_VALUES.items():
        column, *keys = path.split("__")
        values[name] = _dig(getattr(job, column, None), *keys)
    return values


# --- History -----------------------------------------------------------------------------


def load_stats(keys) -> dict[str, list[estimates.Sample]]:
    """History key → its latest completed renders."""
    wanted = sorted({key for key in keys if key})
    stats: dict[str, list[estimates.Sample]] = {}
    for start in range(0, len(wanted), KEY_CHUNK):
        chunk = wanted[start:start + KEY_CHUNK]
        for key, stored in RenderStat.objects.filter(key__in=chunk).values_list("key",
                                                                                "samples"):
            samples = estimates.samples_of(stored)
            if samples:
                stats[key] = samples
    return stats


def render_counts(keys) -> dict[str, int]:
    """History key → how many completed renders it has seen (keys without: absent)."""
    wanted = sorted({key for key in keys if key})
    counts: dict[str, int] = {}
    for start in range(0, len(wanted), KEY_CHUNK):
        chunk = wanted[start:start + KEY_CHUNK]
        counts.update(RenderStat.objects.filter(key__in=chunk).values_list("key", "renders"))
    return counts


def keys_of(row: estimates.Row, *nodes: str) -> list[str]:
    return [row.project_key, row.comp_key, *(estimates.node_key(n) for n in nodes if n)]


def _append(key: str, sample: estimates.Sample, now: datetime) -> None:
    stat = RenderStat.objects.select_for_update().filter(key=key).first()
    if stat is None:
        try:
            with transaction.atomic():
                RenderStat.objects.create(key=key, samples=[sample.as_dict()], renders=1,
                                          updated_at=now)
            return
        except IntegrityError:  # another node's render of the same key, just now
            stat = RenderStat.objects.select_for_update().get(key=key)
    stat.samples = estimates.add_sample(stat.samples, sample)
    stat.renders += 1
    stat.updated_at = now
    stat.save(update_fields=["samples", "renders", "updated_at"])


def on_transition(sender, *, job_id, to_status, kind, at=None, **_) -> None:
    """A completed render, or a review's preview, joins the history: after its
    commit (on a render node, beside its render loop: jobs.node.bookkeeping), as
    estimates are not needed before the job is reported done, nor for the claim of
    the next job."""
    if to_status == Status.COMPLETED or (to_status == Status.AWAITING_REVIEW
                                         and kind == "preview"):
        try:
            with transaction.atomic():
                record_completed(job_id, status=to_status, at=at)
        except Exception:  # estimates are worth less than anything else here
            log.exception("could not add job %s to the render history", job_id)


def record_completed(job_id, status: str | None = None,
                     at: datetime | None = None) -> estimates.Sample | None:
    """Add a just-completed render (or review preview) to the history of its
    keys. Returns the sample, or None when the render says nothing about speed
    (no frames or times). ``status``: only while the job is still in it (a preview
    approved meanwhile reads as a final render: it is left out). ``at``: when the
    render ended, for a preview (which has no finished_at)."""
    found = Job.objects.filter(pk=job_id).values(
        *FIELDS, "finished_at", "render_seconds", node_name=F("node__name"),
        **{name: KT(path) for name, path in JSON_VALUES.items()}).first()
    if found is None or not found["started_at"]:
        return None
    if status is not None and found["status"] != status:
        return None
    # Keyed as the render that just ended (a preview while needs_preview is set).
    row = make_row({**found, "status": Status.RENDERING})
    frames = row.frames or found["frames_done"]
    finished = found["finished_at"] or at or timezone.now()  # a preview: not finished
    total = (finished - found["started_at"]).total_seconds()
    if not frames or total <= 0:
        return None
    after = 0.0
    if found["last_output_at"]:
        after = (finished - found["last_output_at"]).total_seconds()
    added = estimates.completed(row, row.node, load_stats(keys_of(row)),
                                render=found["render_seconds"] or 0.0, total=total,
                                frames=int(frames), after=after)
    now = timezone.now()
    for key, sample in added:
        _append(key, sample, now)
    return added[0][1] if added else None
