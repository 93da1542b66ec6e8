"""Renders by calling aerender directly: plain renders, no nexrender patch of AE.

Asset replacement needs nexrender's generated script, so jobs with assets
are refused here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from jobs.node.engines import relink
from jobs.node.engines.ae_output import VERSION
from jobs.node.engines.base import (
    AfterEffectsEngine,
    RenderCommand,
    RenderError,
    base_env,
    output_name,
    project_file,
    project_suffix,
    spare_folder,
    template_config,
)
from jobs.node.spares import SpareSpec

# job.config template key -> aerender flag.
FLAGS = (("settingsTemplate", "-RStemplate"), ("outputModule", "-OMtemplate"),
         ("renderSettings", "-renderSettings"), ("outputSettings", "-outputSettings"),
         ("frameStart", "-s"), ("frameEnd", "-e"), ("frameIncrement", "-i"))


def runs_scripts(aerender: Path) -> bool:
    """Whether this After Effects runs a script before rendering (``aerender -r``).
    Stock aerender refuses the flag ("Illegal argument flag: -r"): it comes with
    nexrender's patch of Scripts/Startup/commandLineRenderer.jsx beside the binary,
    which nexrender installs and marks "nexrender-patch"."""
    startup = aerender.parent / "Scripts" / "Startup" / "commandLineRenderer.jsx"
    try:
        return "nexrender-patch" in startup.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


class AerenderEngine(AfterEffectsEngine):
    name = "aerender"

    def command(self, job, workdir: Path) -> RenderCommand:
        workdir = Path(workdir)
        template = template_config(job)
        if (job.config or {}).get("assets"):
            raise RenderError("Replacing assets needs the nexrender engine; "
                              "the aerender engine renders the project as it is")
        source = project_file(job)
        # Work on a copy: After Effects writes lock and temp files beside the
        # project, and Dropbox must not sync those.
        project = workdir / f"project{project_suffix(source)}"
        try:
            shutil.copyfile(source, project)
        except OSError as exc:
            raise RenderError(f"Cannot copy the project {source}: {exc}") from exc
        argv = [str(settings.AERENDER_PATH), "-project", str(project),
                "-comp", str(template["composition"]),
                "-output", str(workdir / output_name(template))]
        for key, flag in FLAGS:
            if template.get(key) is not None:
                argv += [flag, str(template[key])]
        if template.get("continueOnMissing"):
            argv.append("-continueOnMissingFootage")
        relinking = relink.write_script(job, workdir)
        if relinking is not None:
            if not runs_scripts(Path(settings.AERENDER_PATH)):
                raise RenderError(
                    "This project's footage was saved with another machine's paths, and "
                    "relinking it runs a script in After Effects, which needs nexrender's "
                    "patch of its commandLineRenderer.jsx; this node's After Effects does "
                    "not have it (the nexrender engine installs it on its first render, "
                    "or use RENDER_ENGINE=nexrender)")
            argv += ["-r", str(relinking)]
        argv += ["-v", "ERRORS_AND_PROGRESS", "-close", "DO_NOT_SAVE_CHANGES"]
        return RenderCommand(argv=argv, env=base_env(), cwd=workdir, spare=self.spare(),
                             first_line=VERSION)

    def spare(self) -> SpareSpec:
        # The guard alone, waiting to start aerender.
        return SpareSpec.make((), base_env(), spare_folder())

    def output_folder(self, job, workdir: Path) -> Path:
        return Path(workdir)
