"""Reading the .aep before rendering: the capped reader's time and memory, and what it
adds to a job's validation.

    python bench/project_read.py [--comps 150 --layers 50 --footage 500]
    # target: inside the default caps (PROJECT_READ_TIMEOUT_SECONDS=60, PROJECT_READ_MAX_MB=1024)

Builds, once (cached in var/bench/projects/), a big project with py-aep's writer:
``--comps`` 1920x1080 25 fps compositions of ``--layers`` layers each (one layer in
ten is text with a font, one nests the previous composition, one is a null, the
rest show one of ``--footage`` PNG files). The job renders the last composition, so
the composition tree to walk is the whole project. Then, on a fresh database:

- the reader alone (jobs.node.preflight.run_reader: a child process, py-aep): wall
  time and peak memory over ``--runs`` runs;
- one job through validation (PENDING -> QUEUED, ``validation.tick`` in this process,
  no stability wait): with this project, against the same job on the simulator's
  JSON stand-in, whose read is skipped -- what the user waits for because of the read.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from harness import REPO, Bench, parse_args

sys.path.insert(0, str(REPO))

CACHE = REPO / "var" / "bench" / "projects"


def build(comps: int, layers: int, footage: int) -> Path:
    """The cached project folder (project.aep + footage/), built if missing."""
    folder = CACHE / f"big-{comps}x{layers}x{footage}"
    if (folder / "project.aep").is_file():
        return folder
    import py_aep

    from tests.helpers.aep import write_png

    shutil.rmtree(folder, ignore_errors=True)
    started = time.monotonic()
    project = py_aep.new("25.2x21", platform="macos").project
    items = []
    for i in range(footage):
        png = write_png(folder / "footage" / f"f{i:04d}.png", 64, 64, (i % 256, 40, 90))
        items.append(project.import_file(py_aep.ImportOptions(png)))
    fonts = ["Montserrat-Bold", "Roboto-Regular", "Inter-Medium"]
    previous = None
    for c in range(comps):
        comp = project.root_folder.add_comp(f"comp_{c:03d}", 1920, 1080, 1.0, 10.0, 25.0)
        for j in range(layers):
            if j % 10 == 0:
                text = comp.add_text(f"text {c} {j}")
                text.text.source_text.value.font = fonts[j % 3]
            elif j % 10 == 1 and previous is not None:
                comp.add(previous)
            elif j % 10 == 2:
                comp.add_null()
            else:
                comp.add(items[(c * layers + j) % footage]).name = f"L{j}"
        previous = comp
    project.save(folder / "project.aep")
    size = (folder / "project.aep").stat().st_size
    print(f"built {folder / 'project.aep'} ({size / 1e6:.1f} MB, {comps * layers} layers, "
          f"{footage} footage files) in {time.monotonic() - started:.1f} s")
    return folder


def through_validation(path: Path, composition: str) -> tuple[float, object]:
    from jobs import lifecycle
    from jobs.models import Job, Status
    from jobs.node import validation

    job = lifecycle.submit(actor="bench", client="bench", project_path=str(path),
                           path_key=str(path).casefold(),
                           config={"template": {"composition": composition}}).job
    started = time.monotonic()
    while job.status not in (Status.QUEUED, Status.FAILED):
        validation.tick()
        job = Job.objects.get(pk=job.pk)
        time.sleep(0.01)
    return time.monotonic() - started, job


def main():
    args = parse_args(__doc__, comps=(int, 150, "compositions"),
                      layers=(int, 50, "layers per composition"),
                      footage=(int, 500, "footage files"), runs=(int, 3, "reader runs"))
    cached = build(args.comps, args.layers, args.footage)
    composition = f"comp_{args.comps - 1:03d}"
    with Bench("project_read", args.db) as bench:
        from django.conf import settings

        from jobs.node import preflight

        folder = bench.root / "Dropbox" / "projects" / "big"
        shutil.copytree(cached, folder)
        path = folder / "project.aep"
        stamp = time.time() - 3600  # saved an hour ago (copytree kept the footage's times)
        os.utime(path, (stamp, stamp))
        size = path.stat().st_size / 1e6
        print(f"project: {size:.1f} MB, {args.comps} compositions x {args.layers} layers, "
              f"{args.footage} footage files; rendering {composition} (nests them all)")

        walls, peaks = [], []
        for _ in range(args.runs):
            started = time.monotonic()
            result = preflight.run_reader(path, composition)
            walls.append(time.monotonic() - started)
            if result.get("error"):
                sys.exit(f"the reader failed: {result['error']}")
            peaks.append(result["peak_mb"])
        print(f"reader (child process, py-aep {__import__('py_aep').__version__}): wall "
              f"median {statistics.median(walls):.2f} s, max {max(walls):.2f} s "
              f"(py-aep's own read {result['read_seconds']:.2f} s); peak memory max "
              f"{max(peaks):.0f} MB over {args.runs} runs")
        print(f"  {len(result['footage'])} footage items, {len(result['fonts'])} fonts, "
              f"{len(result['comps'])} compositions in the tree")
        within = max(walls) < settings.PROJECT_READ_TIMEOUT_SECONDS and \
            max(peaks) < settings.PROJECT_READ_MAX_MB
        print(f"target: inside the caps ({settings.PROJECT_READ_TIMEOUT_SECONDS:g} s, "
              f"{settings.PROJECT_READ_MAX_MB} MB): {'met' if within else 'MISSED'}")

        with_read, job = through_validation(path, composition)
        stand_in = bench.project("stand-in.aep")
        without, _ = through_validation(stand_in, composition)
        print(f"PENDING -> QUEUED through validation: {with_read:.2f} s with the read "
              f"({job.status}, frames_total {job.frames_total}, "
              f"{sum(f['status'] == 'found' for f in job.project['footage'])} footage found) "
              f"vs {without:.2f} s for the JSON stand-in: the read adds "
              f"{with_read - without:.2f} s")


if __name__ == "__main__":
    main()
