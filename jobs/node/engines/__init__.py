"""Render engines by name: ``get_engine("nexrender")``.

An engine builds the command for a job (``command``), follows its output
(``progress``) and finds the finished file (``find_output``); see base.Engine.
"""

from __future__ import annotations

from jobs.node.engines.aerender import AerenderEngine
from jobs.node.engines.base import Engine, RenderCommand, RenderError
from jobs.node.engines.ffmpeg import FfmpegEngine
from jobs.node.engines.nexrender import NexrenderEngine

__all__ = ["Engine", "RenderCommand", "RenderError", "get_engine", "register"]

_ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    _ENGINES[engine.name] = engine
    return engine


def get_engine(name: str) -> Engine:
    try:
        return _ENGINES[name]
    except KeyError:
        raise RenderError(f"Unknown render engine {name!r}") from None


register(NexrenderEngine())
register(AerenderEngine())
register(FfmpegEngine())
