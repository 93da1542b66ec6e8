"""Where a project's footage is on this machine.

A project stores each footage file's absolute path on the machine that saved
it (usually a Mac) and how many folders up from the project it lies (for AE's
relative fallback). Preflight uses this to check the footage before a render;
the engines use it to relink footage for After Effects (engines/relink.py).
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from pathlib import Path

from jobs.submission.paths import PathError, resolve_project_path

_WINDOWS_PATH = re.compile(r"^([A-Za-z]:|\\\\|//)")


def locate(project_path: str, entry: dict) -> tuple[str | None, list[str]]:
    """The footage file as AE would find it here, and every place it may be.

    First the absolute path it was saved with, mapped into DROPBOX_PATH like a
    submitted project path; then the path relative to the project's folder.
    A path that leads outside the Dropbox folder does not count.
    """
    raws = []
    if entry.get("path"):
        raws.append(entry["path"])
    if entry.get("relative_path"):
        flavour = ntpath if _WINDOWS_PATH.match(project_path) else posixpath
        folder = flavour.dirname(project_path)
        raws.append(flavour.normpath(flavour.join(folder, *entry["relative_path"].split("/"))))
    candidates: list[str] = []
    for raw in raws:
        try:
            path = resolve_project_path(raw).path
        except PathError:
            continue
        if path not in candidates:
            candidates.append(path)
    for path in candidates:
        if Path(path).is_file():
            return path, candidates
    return None, candidates
