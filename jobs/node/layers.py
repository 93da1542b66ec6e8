"""The layers of a project's composition, for the batch checks
(``jobs.submission.batches.LayerReader``): a column mapped to a layer the
composition does not have is refused before anything renders.

Reading an After Effects project is the preflight's work (jobs/node/preflight.py,
which reads ``Job.project`` with py-aep). Until it can list a composition's
layer names, nothing is known here: ``composition_layers`` answers None and
the batch check skips the comparison (the rest of the check still runs).
When the preflight lands, this function returns its layer names.
"""

from __future__ import annotations


def composition_layers(project_path: str, composition: str) -> set[str] | None:
    """The layer names of ``composition`` in the project at ``project_path``, or None
    when the project cannot be read here (the batch check then skips this rule)."""
    return None
