"""The layers of a project's compositions, for the batch check
(``jobs.submission.batches.LayerReader``): a column mapped to a layer the
composition does not have is refused before anything renders.

The project is read as the preflight reads it (jobs.node.preflight.run_reader:
py-aep in a child process capped in time and memory). Only a file that starts
like an After Effects project (``RIFX``) is read; anything else (the
simulator's JSON stand-ins, a file Dropbox has not delivered whole) and a
project py-aep cannot read give None, and the batch check skips this rule.
"""

from __future__ import annotations

from jobs.node import preflight

AEP_MAGIC = b"RIFX"


def composition_layers(project_path: str, composition: str) -> dict[str, list[str]] | str | None:
    """The layer names of ``composition`` and of every composition nested in it, by
    composition name; a text when the project has no such composition; None when
    the project cannot be read here."""
    try:
        with open(project_path, "rb") as handle:
            if handle.read(4) != AEP_MAGIC:
                return None
    except OSError:
        return None
    project = preflight.run_reader(project_path, composition)
    if project.get("error"):
        return None
    if project.get("composition") is None:
        names = ", ".join(project.get("compositions") or []) or "none"
        return f"The project has no composition {composition!r} (it has: {names})."
    layers: dict[str, list[str]] = {}
    for comp in project.get("comps", {}).values():
        layers.setdefault(comp["name"], []).extend(layer["name"] for layer in comp["layers"])
    return layers
