"""What every render engine provides, and the pieces AE engines share.

The worker asks an engine for a command, runs it with jobs.node.procs.RenderProcess
in a fresh work folder, feeds the output to the engine's progress tracker, asks
the engine whether the finished process rendered the job (``check``) and
finally asks it for the finished file.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from jobs.node.engines.ae_output import AeOutput, judge
from jobs.node.interrupt import checkpoint
from jobs.node.spares import SpareSpec
from jobs.submission.nexrender_spec import IMAGE_SEQUENCE_EXTS, is_image_sequence
from jobs.submission.paths import PathError, checked_dropbox_file, checked_source_file

__all__ = ["IMAGE_SEQUENCE_EXTS", "is_image_sequence"]  # and what is defined below
# After Effects' own render settings template for quick renders: draft quality at
# half resolution. A review job's preview renders with it (aerender -RStemplate).
DRAFT_SETTINGS = "Draft Settings"
_SAFE_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")


@dataclass
class RenderCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    # A process that can start before the job (jobs.node.spares), and what it is
    # then handed: ``handoff`` (a JSON object for its launcher) or, without one,
    # ``argv`` itself.
    spare: SpareSpec | None = None
    handoff: dict | None = None
    # A line the process prints once the render has succeeded, before it exits: the
    # node goes on at once, and lets the process end and be swept beside it.
    done_line: str | None = None
    # The program's first line of its own (aerender's version): once it shows, the
    # render is under way, and the node may turn to the render before it.
    first_line: re.Pattern | None = None

    def under_way(self, line: str) -> bool:
        """Whether ``line`` is ``first_line`` (aerender indents it in some logs)."""
        return self.first_line is not None and bool(self.first_line.match(line.strip()))


class RenderError(Exception):
    """The render cannot run or did not produce what it should; the message says why.

    ``permanent``: another attempt cannot go better (a timeline over a limit, say),
    so the job fails at once instead of being retried. ``code``: the cause as the
    job's ``error_code`` (jobs.node.engines.ae_output names them).
    """

    def __init__(self, message: str, permanent: bool = False, code: str = ""):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class Engine:
    """One way of rendering a job. Subclasses set ``name`` and build the command."""

    name = ""

    def command(self, job, workdir: Path) -> RenderCommand:
        raise NotImplementedError

    def spare(self) -> SpareSpec | None:
        """What this engine's renders can start before their job (see
        jobs.node.spares), or None: they start when the job is claimed."""
        return None

    def progress(self, job):
        raise NotImplementedError

    def check(self, job, workdir: Path, progress, exit_code: int) -> None:
        """Raise RenderError if the process that ended with ``exit_code`` did not render."""
        if exit_code != 0:
            errors = "; ".join(progress.errors[-3:])
            raise RenderError(f"the renderer exited with code {exit_code}"
                              + (f": {errors}" if errors else ""), code="crashed")

    def find_output(self, job, workdir: Path) -> Path:
        raise NotImplementedError


class AfterEffectsEngine(Engine):
    """The AE engines: aerender's output read by jobs.node.engines.ae_output, the
    job's output in ``output_folder``."""

    def progress(self, job) -> AeOutput:
        template = template_config(job)
        return AeOutput(
            frame_start=_int_or_none(template.get("frameStart")),
            frame_end=_int_or_none(template.get("frameEnd")),
            frame_increment=_int_or_none(template.get("frameIncrement")),
            known_total=job.frames_total,
        )

    def check(self, job, workdir: Path, progress: AeOutput, exit_code: int) -> None:
        template = template_config(job)
        folder = self.output_folder(job, Path(workdir))
        cause = judge(progress, exit_code, find_result(folder, template) is not None, template)
        if cause is not None:
            raise RenderError(cause.text(), permanent=cause.permanent, code=cause.code)

    def output_folder(self, job, workdir: Path) -> Path:
        raise NotImplementedError

    def find_output(self, job, workdir: Path) -> Path:
        workdir = Path(workdir)
        return collect_output(self.output_folder(job, workdir), template_config(job),
                              workdir / "result.zip")


def template_config(job) -> dict:
    """What to render: the job's template, or its preview's while one is due."""
    template = (job.config or {}).get("template")
    if not isinstance(template, dict) or not template.get("composition"):
        raise RenderError("The job has no template.composition to render")
    if getattr(job, "needs_preview", False):
        return preview_template(template)
    return template


def preview_template(template: dict) -> dict:
    """The same composition and frames with the "Draft Settings" render settings
    (half resolution). The client's own render settings would override the
    template's, so they are left out; an image sequence becomes a movie (AE's
    default output module), since a reviewer watches a video."""
    preview = {key: value for key, value in template.items() if key != "renderSettings"}
    preview["settingsTemplate"] = DRAFT_SETTINGS
    if is_image_sequence(template):
        for key in ("outputModule", "outputExt", "outputSettings", "imageSequence"):
            preview.pop(key, None)
    return preview


def output_ext(template: dict) -> str:
    ext = template.get("outputExt")
    if ext is None:
        # nexrender's default, and what aerender's default output module writes.
        return "mov" if sys.platform == "darwin" else "avi"
    ext = str(ext).lstrip(".")
    if not _SAFE_EXT.match(ext):
        raise RenderError(f"Unusable outputExt {ext!r}")
    return ext


def output_name(template: dict) -> str:
    """The -output file name, as nexrender would choose it."""
    ext = output_ext(template)
    if ext.lower() in IMAGE_SEQUENCE_EXTS:
        return f"result_[#####].{ext}"
    return f"result.{ext}"


def project_file(job) -> Path:
    """The real path of the job's project on this machine, checked right before an
    engine opens it: a symlink out of Dropbox fails the job for good."""
    try:
        return checked_dropbox_file(job.project_path)
    except PathError as exc:
        raise RenderError(f"The project file is refused: {exc.message}", permanent=True) \
            from None


def source_file(src: str, where: str) -> Path:
    """The real path of one of the job's asset or timeline sources, checked the same way."""
    try:
        return checked_source_file(src)
    except PathError as exc:
        raise RenderError(f"{where}: {exc.message}", permanent=True) from None


def project_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    return suffix if _SAFE_EXT.match(suffix[1:]) else ".aep"


def spare_folder() -> Path:
    """Where spare render processes wait (a folder that stays)."""
    return Path(settings.RENDER_TEMP_DIR)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never hand the worker's own settings (tokens, database) to a render.
    for key in list(env):
        if key.startswith("API_TOKEN_") or key in {"DATABASE_URL", "SECRET_KEY",
                                                   "SLACK_BOT_TOKEN", "WEBHOOK_SECRET",
                                                   "GOOGLE_CLIENT_SECRET"}:
            del env[key]
    return env


def sequence_frames(folder: Path, template: dict) -> list[Path]:
    ext = output_ext(template).lower()
    return sorted(
        entry for entry in folder.iterdir() if entry.is_file()
        and entry.name.startswith("result") and entry.name.lower().endswith(f".{ext}")
    ) if folder.is_dir() else []


def video_candidates(folder: Path, template: dict) -> list[Path]:
    ext = output_ext(template)
    # Like nexrender: AE 2022+ may write .mov whatever was asked for.
    return [folder / f"result.{ext}"] + [folder / f"result.{other}" for other in (
        "mov", "mp4", "avi") if other != ext.lower()]


def find_result(folder: Path, template: dict) -> Path | None:
    """The render's file in ``folder`` (the first frame of a sequence), if there is one."""
    if is_image_sequence(template):
        frames = sequence_frames(folder, template)
        return frames[0] if frames else None
    return next((path for path in video_candidates(folder, template) if path.is_file()), None)


def collect_output(folder: Path, template: dict, zip_to: Path) -> Path:
    """The finished render in ``folder``: the video file, or the frames zipped."""
    if is_image_sequence(template):
        frames = sequence_frames(folder, template)
        if not frames:
            raise RenderError(f"Couldn't find a result file: {folder / output_name(template)} "
                              "(no frames were rendered)", code="no_output")
        # Stored, not deflated: rendered frames hardly compress and zipping
        # should cost no more than copying.
        with zipfile.ZipFile(zip_to, "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
            for frame in frames:
                checkpoint()  # thousands of frames take a while: stop when asked
                archive.write(frame, arcname=frame.name)
        return zip_to
    candidates = video_candidates(folder, template)
    for candidate in candidates:
        if candidate.is_file():
            if candidate.stat().st_size == 0:
                raise RenderError(f"The result file is empty: {candidate}", code="no_output")
            return candidate
    raise RenderError(f"Couldn't find a result file: {candidates[0]}", code="no_output")


def _int_or_none(value) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None
