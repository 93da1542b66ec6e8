"""Jobs store their files relative to the roots, not as absolute paths of one machine.

``project_path`` and the sources in ``config`` (timeline ``src``, nexrender
asset ``src``, which were file:// URIs) of jobs, and a batch's
``project_path``, become relative to DROPBOX_PATH; a job's ``output_path``
and a preview's ``path`` relative to RENDER_OUTPUT_DIR; "/"-separated. The roots are
those of the machine that runs the migration. A path from another machine's
Dropbox (``C:\\Users\\bob\\Dropbox\\...``) is cut after its Dropbox folder
(``Dropbox``, ``Dropbox (Team)``, ...). A path that fits neither is left as
it was: the job shows it, and its files are "not inside the Dropbox folder".

The helpers are copied here on purpose: a migration must keep doing what it
did when it was written, whatever jobs.submission.paths becomes.
"""

import re
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.db import migrations

_DRIVE = re.compile(r"^[A-Za-z]:")
BATCH = 500


def _pure(text: str):
    windows = bool(_DRIVE.match(text)) or text.startswith(("\\\\", "//"))
    return (PureWindowsPath(text) if windows else PurePosixPath(text)), windows


def _is_absolute(text: str) -> bool:
    return text.startswith(("/", "\\")) or bool(_DRIVE.match(text))


def relative(text: str, root_text: str, dropbox_fallback: bool) -> str:
    """``text`` relative to ``root_text``; unchanged when it is relative already or
    cannot be placed."""
    if not text or not _is_absolute(text):
        return text
    path, windows = _pure(text)
    root, root_windows = _pure(str(root_text))
    fold = str.casefold if windows else str
    if windows == root_windows and len(path.parts) > len(root.parts) and all(
            fold(a) == fold(b) for a, b in zip(path.parts, root.parts, strict=False)):
        return "/".join(path.parts[len(root.parts):])
    if dropbox_fallback:
        parts = list(path.parts)
        for i in range(1, len(parts) - 1):
            name = parts[i].casefold()
            if name == "dropbox" or name.startswith("dropbox ("):
                return "/".join(parts[i + 1:])
    return text


def source(value, root: str):
    if not isinstance(value, str):
        return value
    text = value
    if text.lower().startswith("file://"):
        text = unquote(urlsplit(text).path)
        if re.match(r"^/[A-Za-z]:", text):
            text = text[1:]
        moved = relative(text, root, True)
        return moved if moved != text else value
    return relative(text, root, True)


def convert_config(config: dict, engine: str, root: str) -> dict:
    if not isinstance(config, dict):
        return config
    config = dict(config)
    keys = ("backgrounds", "audio") if engine == "ffmpeg" else ("assets",)
    for key in keys:
        items = config.get(key)
        if not isinstance(items, list):
            continue
        config[key] = [dict(item, src=source(item["src"], root))
                       if isinstance(item, dict) and "src" in item
                       and not str(item["src"]).lower().startswith(("http://", "https://"))
                       else item for item in items]
    return config


def forwards(apps, schema_editor):
    dropbox, output = str(settings.DROPBOX_PATH), str(settings.RENDER_OUTPUT_DIR)
    for model, field, root, fallback in (("Batch", "project_path", dropbox, True),
                                         ("JobPreview", "path", output, False)):
        Model = apps.get_model("jobs", model)
        for pk, value in Model.objects.values_list("pk", field).iterator(chunk_size=BATCH):
            moved = relative(value, root, fallback)
            if moved != value:
                Model.objects.filter(pk=pk).update(**{field: moved})
    Job = apps.get_model("jobs", "Job")
    last = None
    while True:
        rows = Job.objects.order_by("pk")
        if last is not None:
            rows = rows.filter(pk__gt=last)
        rows = list(rows.only("pk", "engine", "project_path", "output_path", "config")[:BATCH])
        if not rows:
            return
        for job in rows:
            changed = {
                "project_path": relative(job.project_path, dropbox, True),
                "output_path": relative(job.output_path, output, False),
                "config": convert_config(job.config, job.engine, dropbox),
            }
            changed = {k: v for k, v in changed.items() if v != getattr(job, k)}
            if changed:
                Job.objects.filter(pk=job.pk).update(**changed)
        last = rows[-1].pk


def _absolute(text: str, root_text: str) -> str:
    if not text or _is_absolute(text):
        return text
    root, _ = _pure(str(root_text))
    return str(root.joinpath(*text.split("/")))


def backwards(apps, schema_editor):
    dropbox, output = str(settings.DROPBOX_PATH), str(settings.RENDER_OUTPUT_DIR)
    for model, field, root in (("Batch", "project_path", dropbox),
                               ("JobPreview", "path", output)):
        Model = apps.get_model("jobs", model)
        for pk, value in Model.objects.values_list("pk", field).iterator(chunk_size=BATCH):
            if _absolute(value, root) != value:
                Model.objects.filter(pk=pk).update(**{field: _absolute(value, root)})
    Job = apps.get_model("jobs", "Job")
    for job in Job.objects.only("pk", "engine", "project_path", "output_path", "config") \
            .iterator(chunk_size=BATCH):
        config = job.config
        if isinstance(config, dict):
            config = dict(config)
            for key in ("backgrounds", "audio", "assets"):
                items = config.get(key)
                if not isinstance(items, list):
                    continue
                back = []
                for item in items:
                    if isinstance(item, dict) and isinstance(item.get("src"), str) and \
                            not item["src"].lower().startswith(("http://", "https://", "file:")):
                        path = _absolute(item["src"], dropbox)
                        if key == "assets":
                            pure, windows = _pure(path)
                            path = ("file:///" + quote(path.replace("\\", "/"), safe="/:")
                                    if windows else pure.as_uri())
                        item = dict(item, src=path)
                    back.append(item)
                config[key] = back
        Job.objects.filter(pk=job.pk).update(
            project_path=_absolute(job.project_path, dropbox),
            output_path=_absolute(job.output_path, output), config=config)


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0010_review_batches"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
