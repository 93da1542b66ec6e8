"""Relinking footage for After Effects on this render node.

A project keeps each footage file's absolute path on the machine that saved
it, usually an artist's Mac (``/Users/ana/Dropbox/spot/logo.png``). After
Effects on a Windows render node cannot open that path, and its relative
fallback looks beside the copy of the project the engines render from (a
temp folder), not beside the original in Dropbox. Preflight already found
each file in this machine's Dropbox (jobs.node.footage); this module hands
those places to After Effects as a small ExtendScript that runs before the
render and points every such footage item at its file here
(``FootageItem.replace`` / ``replaceWithSequence``).

Footage that After Effects finds by itself (saved on this machine), footage
an asset replaces, and footage that is missing are left alone: missing
footage is AE's to report (engines/ae_output.py reads it).
"""

from __future__ import annotations

import json
from pathlib import Path

from jobs.node.footage import locate
from jobs.submission.paths import PathError, contained, dropbox_file

MARKER = "// AE Render Manager: relink footage saved with another machine's paths."
SCRIPT_NAME = "relink.jsx"


def links(job) -> list[tuple[int, str, bool]]:
    """(AE item id, path on this machine, is an image sequence) of every footage
    item of the job's project that After Effects would not find on its own."""
    try:
        project_path = str(dropbox_file(job.project_path))
    except PathError:
        return []
    found = []
    for entry in (job.project or {}).get("footage") or []:
        if entry.get("status") != "found" or not isinstance(entry.get("id"), int):
            continue
        here, _ = locate(project_path, entry)
        if here is None:
            continue
        try:
            real = contained(Path(here))
        except PathError:
            continue  # a symlink out of Dropbox since preflight: AE reports it missing
        if _opens_as_saved(entry.get("path"), real):
            continue
        found.append((entry["id"], str(real), bool(entry.get("is_sequence"))))
    return found


def _opens_as_saved(saved: str | None, real: Path) -> bool:
    """Whether AE opens this very file through the path the project was saved with."""
    if not saved:
        return False
    try:
        return Path(saved).resolve(strict=True) == real
    except (OSError, RuntimeError, ValueError):
        return False


def script(job) -> str | None:
    """The relinking ExtendScript for ``job``, or None when nothing needs relinking.

    The paths are JSON string literals (valid ExtendScript, every character
    escaped), so no file name can break out of the script.
    """
    found = links(job)
    if not found:
        return None
    data = json.dumps([[item, path, sequence] for item, path, sequence in found],
                      ensure_ascii=True)
    return "\n".join([
        MARKER,
        "(function () {",
        f"    var links = {data};",
        "    for (var i = 0; i < links.length; i++) {",
        "        var item = app.project.itemByID(links[i][0]);",
        "        var file = new File(links[i][1]);",
        "        if (!item || !(item instanceof FootageItem) || !file.exists) { continue; }",
        "        if (links[i][2]) { item.replaceWithSequence(file, false); }",
        "        else { item.replace(file); }",
        "    }",
        "})();",
        "",
    ])


def write_script(job, folder: Path) -> Path | None:
    """Write the relinking script into ``folder``; its path, or None when not needed."""
    text = script(job)
    if text is None:
        return None
    path = Path(folder) / SCRIPT_NAME
    path.write_text(text, encoding="utf-8")
    return path
