"""After Effects projects for tests: built with py-aep, and real ones AE saved.

Built projects come from py-aep's own writer (py-aep==0.18.2, MIT): a new
project, compositions, footage imported from real files, text layers with
fonts, saved as .aep. A Mac saved them, as far as the project can tell: every
footage path is rewritten to the path the artist's Mac had, with the
relative-path counts After Effects stores beside it. py-aep has no public API
for a path that does not exist on this machine, so that one step uses its
internals (the ``alas`` record of the footage's Pin), like the research
script it comes from (staging/pyaep/make_fixture.py).

Real projects (``real_sample``) are installed by ``npm ci`` from pinned
devDependencies (package.json); they are not in our repository because the
nexrender ones are AGPL-3.0.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from jobs import lifecycle
from jobs.models import Job, Status
from jobs.node import validation
from tests.helpers.common import REPO, requires

MAC_DROPBOX = "/Users/alice/Dropbox"


def write_png(path: Path, width: int = 16, height: int = 16, rgb=(200, 40, 40)) -> Path:
    """A valid 8-bit RGB PNG (py-aep reads its header on import)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def set_stored_path(footage, fullpath: str, project_file: str, missing: bool = False) -> None:
    """Make ``footage`` point at ``fullpath`` as the Mac that saved ``project_file`` stored it."""
    from py_aep.binary.utils import dump_alas, find_by_list_type, find_by_type
    from py_aep.resolvers.platform_paths import relative_path_counts

    source = footage.main_source
    als2 = find_by_list_type(chunks=source._pin.chunks, list_type="Als2")
    alas = find_by_type(chunks=als2.chunks, chunk_type="alas")
    data = json.loads(alas.value)
    base, target = relative_path_counts(project_file, fullpath, target_is_folder=False)
    data.update(fullpath=fullpath, platform=2, ascendcount_base=base, ascendcount_target=target,
                server_name="", server_volume_name="Macintosh HD")
    alas.value = dump_alas(data)
    source._file = fullpath
    if missing:
        source._sspc.footage_missing_at_save = True  # what AE records for a file it missed


@dataclass
class Promo:
    """The test project: where it is, and where each footage file is on this machine."""

    path: Path
    mac_path: str
    files: dict[str, Path] = field(default_factory=dict)  # footage name -> local file


def promo_project(dropbox: Path, folder: str = "projects/promo", *, present=None,
                  plate_missing_at_save: bool = True, age: float = 120) -> Promo:
    """A project as an artist's Mac saved it into Dropbox.

    - comp "main" 1920x1080, 25 fps, 10 s, work area 1 s + 2 s (50 frames):
      text "Title" (Montserrat-Bold), the comp "intro" nested as "Intro", and
      footage layers "Logo" (footage/logo.png, beside the project),
      "Background" (stock/background.png, elsewhere in Dropbox), "Card"
      (saved on an external disk as /Volumes/Work/promo/footage/card.png: only
      the path relative to the project finds it here) and "Plate"
      (footage/plate.png, which AE already missed when saving);
    - comp "intro" 1280x720, 30 fps, 5 s: text "Tagline" (Roboto-Regular) and
      "Logo small" (logo.png again);
    - comp "unused": a layer of unused.png, which is missing (nothing renders it).

    ``present``: the footage names whose files exist here (default: all but
    plate.png and unused.png).
    """
    import py_aep

    present = {"logo.png", "background.png", "card.png"} if present is None else set(present)
    project_dir = dropbox / folder
    mac_project_dir = f"{MAC_DROPBOX}/{folder}"
    mac_project = f"{mac_project_dir}/promo.aep"
    # name -> (where the Mac had it, where it is here)
    places = {
        "logo.png": (f"{mac_project_dir}/footage/logo.png", project_dir / "footage/logo.png"),
        "background.png": (f"{MAC_DROPBOX}/stock/background.png",
                           dropbox / "stock/background.png"),
        "card.png": ("/Volumes/Work/promo/footage/card.png", project_dir / "footage/card.png"),
        "plate.png": (f"{mac_project_dir}/footage/plate.png", project_dir / "footage/plate.png"),
        "unused.png": (f"{mac_project_dir}/footage/unused.png",
                       project_dir / "footage/unused.png"),
    }
    stamp = time.time() - age
    app = py_aep.new("25.2x21", platform="macos")
    project = app.project
    root = project.root_folder
    main = root.add_comp("main", 1920, 1080, 1.0, 10.0, 25.0)
    main.work_area_start = 1.0
    main.work_area_duration = 2.0
    intro = root.add_comp("intro", 1280, 720, 1.0, 5.0, 30.0)
    unused = root.add_comp("unused", 640, 360, 1.0, 2.0, 25.0)
    items = {}
    for name, (mac_path, local) in places.items():
        write_png(local)
        os.utime(local, (stamp, stamp))  # AE records this time in the project
        items[name] = project.import_file(py_aep.ImportOptions(local))
        # "card.png" was saved on another volume: its relative counts are those of
        # a project saved beside it there.
        saved_from = "/Volumes/Work/promo/promo.aep" if name == "card.png" else mac_project
        set_stored_path(items[name], mac_path, saved_from,
                        missing=name == "plate.png" and plate_missing_at_save)
    for name, layer_name in (("plate.png", "Plate"), ("card.png", "Card"),
                             ("background.png", "Background"), ("logo.png", "Logo")):
        main.add(items[name]).name = layer_name
    main.add(intro).name = "Intro"
    title = main.add_text("Summer Sale")
    title.name = "Title"
    title.text.source_text.value.font = "Montserrat-Bold"
    intro.add(items["logo.png"]).name = "Logo small"
    tagline = intro.add_text("Only this week")
    tagline.name = "Tagline"
    tagline.text.source_text.value.font = "Roboto-Regular"
    unused.add(items["unused.png"]).name = "Unused"

    path = project_dir / "promo.aep"
    path.unlink(missing_ok=True)
    project.save(path)
    os.utime(path, (stamp, stamp))
    files = {}
    for name, (_, local) in places.items():
        if name in present:
            files[name] = local
        else:
            local.unlink()
    return Promo(path=path, mac_path=mac_project, files=files)


# --- Real projects, saved by After Effects ----------------------------------------------

SAMPLES = {
    # @nexrender/action-mogrt@1.57.1 (AGPL-3.0), test/assets/ae/test.aep: AE 23.5x52
    # (2023) on macOS; a footage layer (/Users/inlife/Downloads/square.jpg), a null
    # and a text layer in TV2SansDisplay-Bold.
    "mogrt": "node_modules/@nexrender/action-mogrt/test/assets/ae/test.aep",
    # @nexrender/action-lottie@1.62.9 (AGPL-3.0), lib/assets/templates/: AE 17.1x37
    # (2020) on Windows, an audio footage layer (C:\\Users\\tropi\\...\\Audio1.mp3).
    "lottie_ae2020": "node_modules/@nexrender/action-lottie/lib/assets/templates/"
                     "__bodymovin_sound_template.aep",
    # The same package: AE 15.1x12 (CC 2018) on Windows, one empty composition.
    "lottie_ae2018": "node_modules/@nexrender/action-lottie/lib/assets/templates/"
                     "__bodymovin_sound_template_2018.aep",
    # bodymovin@4.13.0 (MIT), build/old_parser/helperProject.aep: AE CS6, older than
    # anything py-aep reads.
    "cs6": "node_modules/bodymovin/build/old_parser/helperProject.aep",
    # @nexrender/action-mogrt@1.57.1, test/assets/ae.mogrt: a Motion Graphics
    # template whose project.aegraphic (a zip) holds a project AE "collected"
    # (File > Dependencies > Collect Files) with its footage: (Footage)/square.jpg.
    "mogrt_collected": "node_modules/@nexrender/action-mogrt/test/assets/ae.mogrt",
}


def real_sample(name: str) -> Path:
    path = REPO / SAMPLES[name]
    if not path.is_file():
        requires(f"The real After Effects sample {SAMPLES[name]}",
                 "run `make setup` (npm ci installs the pinned devDependencies)")
    return path


def collected_mogrt(into: Path) -> Path:
    """Unpack the collected project of the real .mogrt into ``into``; its test.aep."""
    with zipfile.ZipFile(real_sample("mogrt_collected")) as mogrt:
        graphic = zipfile.ZipFile(io.BytesIO(mogrt.read("project.aegraphic")))
    into.mkdir(parents=True, exist_ok=True)
    with graphic:
        for member in graphic.namelist():
            if member in ("test.aep", "(Footage)/square.jpg"):
                graphic.extract(member, into)
    return into / "test.aep"


# --- Through validation -----------------------------------------------------------------


def submit(user, path, composition="main", assets=None, **template):
    config = {"template": {"composition": composition, **template}, "assets": assets or []}
    return lifecycle.submit(actor="api:test", user=user, client="test", project_path=str(path),
                            path_key=str(path).casefold(), config=config).job


def tick_until(job, done, meanwhile=None, timeout=30.0) -> Job:
    """Run validation ticks (``meanwhile`` before each) until ``done(job)``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if meanwhile is not None:
            meanwhile()
        validation.tick()
        job.refresh_from_db()
        if done(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job stayed {job.status}: {job.validation_message} {job.project}")


def settle(job) -> Job:
    return tick_until(job, lambda job: job.status in (Status.QUEUED, Status.FAILED))
