"""Reads what a render needs from an After Effects project (.aep/.aet), with py-aep.

This module runs in a child process of its own (``jobs.node.preflight``
starts it and caps its time and memory), so it imports nothing of Django:

    python -m jobs.node.aep_reader [--max-mb N] PROJECT COMPOSITION OUT.json

It writes one JSON object to OUT.json: ``{"error": "..."}`` when py-aep cannot
read the file, otherwise the project's compositions and, for COMPOSITION and
the compositions nested in it, the layers, the footage they use and the fonts
of their text layers (see ``read``). Plain data only, no py-aep objects.

py-aep (pinned: its private attributes are used below) parses lazily, so a
damaged file can fail at any attribute: the whole read is one ``try``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import sys
import threading
import time
from typing import Any

__all__ = ["read", "relative_footage_path", "ae_release_name"]

# major version -> the release's marketing name
_RELEASES = {11: "CS6", 12: "CC", 13: "CC 2015", 14: "CC 2017", 15: "CC 2018", 16: "CC 2019",
             17: "2020", 18: "2021"}


def ae_release_name(version: str) -> str:
    """'23.5x52' -> 'After Effects 2023 (23.5)'."""
    match = re.match(r"^(\d+)\.(\d+)x(\d+)$", version or "")
    if not match:
        return f"After Effects {version}".strip()
    major, minor = int(match.group(1)), int(match.group(2))
    name = _RELEASES.get(major) or (str(2000 + major) if major >= 22 else str(major))
    return f"After Effects {name} ({major}.{minor})"


def relative_footage_path(fullpath: str, base: int, target: int) -> str | None:
    """The path relative to the project's folder that AE falls back to.

    AE stores one path record per file (``alas``): the absolute ``fullpath`` of
    the machine that saved it, and two counts: ``ascendcount_base``, the path
    components from the deepest folder the project and the file share down to
    the project file (itself included), and ``ascendcount_target``, the same
    down to the footage. So: ``..`` (base - 1) times, then the last ``target``
    components of the full path. (0, 0): no relative path (another volume).
    """
    if base <= 0 or target <= 0:
        return None
    parts = [part for part in re.split(r"[\\/]+", fullpath) if part]
    if target > len(parts):
        return None
    return "/".join([".."] * (base - 1) + parts[-target:])


def _path_record(source) -> dict[str, Any]:
    try:
        from py_aep.binary.utils import parse_alas_data

        return dict(parse_alas_data(source._pin.chunks))
    except (AttributeError, ImportError, ValueError):
        return {}


def _footage(item, py_aep) -> dict[str, Any]:
    source = item.main_source
    entry: dict[str, Any] = {
        "id": item.id, "name": item.name, "kind": item.asset_type,  # file | placeholder
        "path": None, "relative_path": None, "is_sequence": False,
        "missing_at_save": bool(item.footage_missing), "saved_mtime": None,
    }
    if isinstance(source, py_aep.FileSource):
        record = _path_record(source)
        base = int(record.get("ascendcount_base") or 0)
        target = int(record.get("ascendcount_target") or 0)
        # The last-modified time AE saw for the file (Unix seconds, 0: not
        # stamped), as it compares it on open; private in py-aep 0.18.2.
        stamp = getattr(getattr(source, "_sspc", None), "source_modified", 0) or 0
        entry.update(path=source.file, relative_path=relative_footage_path(source.file, base,
                                                                           target),
                     is_sequence=bool(source.target_is_folder), saved_mtime=stamp or None)
    return entry


def _text_fonts(layer) -> list[str]:
    """PostScript names of every character run of the Source Text value and its keyframes."""
    source_text = layer.text.source_text
    documents = [key.value for key in source_text.keyframes] or [source_text.value]
    names: list[str] = []
    for document in documents:
        if document is None:
            continue
        # The public font_object is the first character's font only.
        used = getattr(document, "_used_font_objects", None)
        for font in (used() if callable(used) else [document.font_object]):
            name = getattr(font, "post_script_name", None)
            if name and name not in names:
                names.append(name)
    return names


def _read(path: str, composition: str) -> dict[str, Any]:
    import py_aep

    app = py_aep.parse(path)
    project = app.project
    comps = list(project.compositions)
    result: dict[str, Any] = {
        "saved_with": app.version,
        "saved_with_name": ae_release_name(app.version),
        "compositions": [comp.name for comp in comps],
        "composition": None, "comps": {}, "footage": [], "fonts": [],
    }
    # AE allows two comps of one name; aerender -comp takes the first.
    target = next((comp for comp in comps if comp.name == composition), None)
    if target is None:
        return result
    result["composition"] = {
        "name": target.name, "width": target.width, "height": target.height,
        "pixel_aspect": target.pixel_aspect, "fps": target.frame_rate,
        "duration_seconds": target.duration, "frames": target.frame_duration,
        "work_area_start_frame": target.work_area_start_frame,
        "work_area_frames": target.work_area_duration_frame,
    }
    # The composition and every composition nested in it: what the render touches.
    footage: dict[int, Any] = {}
    fonts: list[str] = []
    todo, seen = [target], set()
    while todo:
        comp = todo.pop()
        if comp.id in seen:
            continue
        seen.add(comp.id)
        layers = []
        for index, layer in enumerate(comp.layers, start=1):  # AE counts layers from 1
            # isinstance first: on a camera or light, reading .source builds the
            # layer's whole property tree.
            source = layer.source if isinstance(layer, py_aep.AVLayer) else None
            if isinstance(layer, py_aep.TextLayer):
                fonts.extend(name for name in _text_fonts(layer) if name not in fonts)
            footage_id = comp_id = None
            if isinstance(source, py_aep.CompItem):
                comp_id = source.id
                todo.append(source)
            elif isinstance(source, py_aep.FootageItem) and source.asset_type != "solid":
                # Solids (and nulls, whose source is a solid) have no file.
                footage_id = source.id
                footage.setdefault(source.id, source)
            layers.append({"index": index, "name": layer.name, "footage": footage_id,
                           "comp": comp_id})
        result["comps"][str(comp.id)] = {"name": comp.name, "layers": layers}
    result["footage"] = [_footage(item, py_aep) for item in footage.values()]
    result["fonts"] = fonts
    return result


def read(path: str, composition: str) -> dict[str, Any]:
    """The project at ``path`` as plain data; ``{"error": ...}`` if py-aep cannot read it."""
    previous = gc.get_threshold()
    # py-aep builds many reference cycles the collector cannot free while
    # reading: rare passes, one collection at the end (py-aep's "Large projects").
    gc.set_threshold(100_000, 50, 1000)
    try:
        return _read(path, composition)
    except MemoryError:
        raise
    except RecursionError:
        return {"error": "not a readable After Effects project (RecursionError)"}
    except Exception as exc:  # OSError, ValueError, struct.error, ChunkNotFoundError, ParseError...
        text = str(exc).strip()[:300]
        return {"error": f"not a readable After Effects project ({type(exc).__name__}"
                         f"{': ' + text if text else ''})"}
    finally:
        gc.set_threshold(*previous)


def _peak_mb() -> float | None:
    """This process's peak resident memory.

    Not ``ru_maxrss`` on Linux: it keeps the high-water mark of the parent
    at fork time across exec, so a big worker would show as a big reader."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
    except ImportError:  # Windows
        try:
            import psutil

            return round(psutil.Process().memory_info().peak_wset / 2**20, 1)
        except Exception:
            return None


def _limit_memory(max_mb: int) -> None:
    """A hard address-space cap where the OS has one (the parent also watches RSS).

    The address space is larger than what is resident (shared libraries,
    allocator arenas), hence the headroom."""
    try:
        import resource
    except ImportError:
        return
    limit = int(max_mb * 1.25 + 256) * 2**20
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit already, say
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> int:
    options = {"--max-mb": 0.0, "--timeout": 0.0}
    while argv[:1] and argv[0] in options and len(argv) > 1:
        options[argv[0]], argv = float(argv[1]), argv[2:]
    if len(argv) != 3:
        sys.stderr.write("usage: python -m jobs.node.aep_reader [--max-mb N] [--timeout S] "
                         "PROJECT COMPOSITION OUT.json\n")
        return 2
    path, composition, out = argv
    max_mb, timeout = int(options["--max-mb"]), options["--timeout"]
    if max_mb:
        _limit_memory(max_mb)
    if timeout:
        # The parent kills the reader at ``timeout``; should the parent die first,
        # the reader still ends on its own.
        watchdog = threading.Timer(timeout * 2 + 5, os._exit, args=(3,))
        watchdog.daemon = True
        watchdog.start()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    logging.getLogger("py_aep").setLevel(logging.ERROR)  # its warnings are not our errors
    started = time.monotonic()
    try:
        result = read(path, composition)
    except MemoryError:
        result = {"error": f"reading the project needed more than {max_mb} MB",
                  "out_of_memory": True}
    result["read_seconds"] = round(time.monotonic() - started, 3)
    result["peak_mb"] = _peak_mb()
    tmp = f"{out}.part"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(result, handle, ensure_ascii=False)
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
