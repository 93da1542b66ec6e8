"""Renders through nexrender-cli, with a job JSON the manager writes itself.

A nexrender job JSON is code (notes/nexrender.md): so the job is built here
from the already-cleaned config, key by key. The manager sets uid,
template.src, every file name and the output location; client config never
reaches nexrender as-is.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from jobs.node.engines import relink
from jobs.node.engines.ae_output import VERSION
from jobs.node.engines.base import (
    AfterEffectsEngine,
    RenderCommand,
    RenderError,
    base_env,
    project_file,
    project_suffix,
    source_file,
    spare_folder,
    template_config,
)
from jobs.node.spares import SpareSpec

PRELOAD = Path(__file__).resolve().parent / "nexrender_linux_preload.js"
LAUNCHER = Path(__file__).resolve().parent / "nexrender_launcher.js"
TEMPLATE_KEYS = ("composition", "outputModule", "outputExt", "settingsTemplate",
                 "renderSettings", "outputSettings", "frameStart", "frameEnd",
                 "frameIncrement", "continueOnMissing", "imageSequence")
ASSET_TYPES = ("data", "image", "video", "audio")
ASSET_KEYS = ("layerName", "layerIndex", "property", "value", "composition")
_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


class NexrenderEngine(AfterEffectsEngine):
    name = "nexrender"

    def command(self, job, workdir: Path) -> RenderCommand:
        workdir = Path(workdir)
        job_file = workdir / "job.json"
        built = build_job(job)
        relinking = relink.write_script(job, workdir)
        if relinking is not None:
            # Runs in nexrender's script step, before the render (and before the
            # client's assets, which replace layers by name or index).
            built["assets"].insert(0, {"type": "script", "src": relinking.as_uri(),
                                       "name": relink.SCRIPT_NAME})
        job_file.write_text(json.dumps(built, indent=2), encoding="utf-8")
        args = ["--file", str(job_file), "--binary", str(settings.AERENDER_PATH),
                "--workpath", str(workdir), "--skip-cleanup", "--no-analytics", "--debug"]
        # What runs is this CLI command; it starts in a spare launcher
        # (nexrender_launcher.js, node.js and @nexrender/core loaded ahead of the
        # job), which runs the CLI's own bin.js with these arguments.
        argv = [settings.NODE_BINARY, str(settings.NEXRENDER_CLI), *args]
        # Secret per render, so that nothing the render prints (aerender's output is
        # echoed) can pass for it.
        done = f"render manager: rendered {secrets.token_hex(16)}"
        return RenderCommand(argv=argv, env=nexrender_env(), cwd=workdir, spare=self.spare(),
                             handoff={"cwd": str(workdir), "args": args, "done": done},
                             done_line=done, first_line=VERSION)

    def spare(self) -> SpareSpec:
        return SpareSpec.make((settings.NODE_BINARY, str(LAUNCHER), str(settings.NEXRENDER_CLI)),
                              nexrender_env(), spare_folder())

    def output_folder(self, job, workdir: Path) -> Path:
        return Path(workdir) / job_uid(job)


def job_uid(job) -> str:
    return job.id.hex


def build_job(job) -> dict:
    """The nexrender job, built only from checked values (see the module doc)."""
    config = template_config(job)
    project = project_file(job)
    template = {key: config[key] for key in TEMPLATE_KEYS if config.get(key) is not None}
    template["src"] = project.as_uri()
    template["name"] = f"project{project_suffix(project)}"
    if "frameIncrement" in template:
        # core 1.63.3 reads -i from "incrementFrame" (render.js), not the
        # documented "frameIncrement": set both so the increment reaches aerender.
        template["incrementFrame"] = template["frameIncrement"]
    assets = []
    for index, asset in enumerate((job.config or {}).get("assets") or []):
        assets.append(build_asset(index, asset))
    return {"uid": job_uid(job), "template": template, "assets": assets, "actions": {}}


def build_asset(index: int, asset: dict) -> dict:
    kind = asset.get("type") if isinstance(asset, dict) else None
    if kind not in ASSET_TYPES:
        raise RenderError(f"Asset {index}: type {kind!r} is not allowed")
    built = {"type": kind}
    built.update({key: asset[key] for key in ASSET_KEYS if key in asset})
    if kind == "data":
        built["name"] = f"asset{index:03d}"
        return built
    src = asset.get("src")
    if not isinstance(src, str) or (urlsplit(src).scheme not in ("", "file")
                                    and not re.match(r"^[A-Za-z]:", src)):
        raise RenderError(f"Asset {index}: only files inside the Dropbox folder are allowed")
    # Stored relative to the Dropbox folder: nexrender copies the real file of
    # this machine, checked now, just before it reads it.
    real = source_file(src, f"Asset {index}")
    built["src"] = real.as_uri()
    # core 1.63.3 cannot download an asset without a name; and a generated
    # name cannot traverse paths. AE needs the extension to import the file.
    suffix = real.suffix
    built["name"] = f"asset{index:03d}{suffix if _SAFE_EXT.match(suffix) else ''}"
    return built


def nexrender_env() -> dict[str, str]:
    env = base_env()
    env.update({
        # aerender's log goes into the job's work folder (and the deprecation
        # notice about its location is not printed on every render).
        "NEXRENDER_ENABLE_AELOG_PROJECT_FOLDER": "true",
        # nexrender's own stall watchdog kills aerender only, not AfterFX: leave
        # stalls to the manager's watchdog (RENDER_STALL_SECONDS), which kills
        # the whole tree, by giving nexrender's a longer fuse.
        "NEXRENDER_MAX_UPDATE_TIMEOUT": str(int(settings.RENDER_STALL_SECONDS * 2) + 60),
        "FORCE_COLOR": "0",
        "NO_COLOR": "1",
    })
    # HOME/USERPROFILE are left alone: After Effects keeps its preferences and
    # licence there. With --no-analytics and the default (off) licence helper,
    # nexrender itself writes only into --workpath (and patches the AE install).
    if sys.platform not in ("win32", "darwin"):
        quoted = '"' + str(PRELOAD).replace("\\", "\\\\").replace('"', '\\"') + '"'
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} --require {quoted}".strip()
    return env
