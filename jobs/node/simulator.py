"""Installs the aerender simulator (simulator/ in the repo) where nexrender may patch it.

nexrender rewrites ``Scripts/Startup/commandLineRenderer.jsx`` beside the
aerender binary on every start, so the simulator always runs from a copy,
never from the repository folder.
"""

from __future__ import annotations

import importlib.util
import io
import platform
import py_compile
import shutil
import stat
import struct
import sys
import zipfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "simulator"


def install(target_dir: Path) -> Path:
    """Copy the simulator into ``target_dir``; return the path of its executable."""
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SOURCE, target_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "Backup.Scripts"))
    # A fresh, unpatched startup script each time, as a new AE install would have.
    shutil.copyfile(SOURCE / "Scripts" / "Startup" / "commandLineRenderer.jsx",
                    target_dir / "Scripts" / "Startup" / "commandLineRenderer.jsx")
    script = target_dir / "aerender"
    if sys.platform == "win32":
        return _windows_launcher(script)
    # The stand-in's own start-up sits in every gap a benchmark measures around
    # aerender, on our side and on nexrender's: keep it small. The code runs from
    # a module compiled here (a script is compiled on every run: 12 ms), under
    # the interpreter running the manager (it has imageio_ffmpeg for .mov/.mp4),
    # without site (25 ms; the simulator adds it when it needs the venv).
    module = target_dir / "aerender_sim.py"
    shutil.copyfile(script, module)
    py_compile.compile(str(module), doraise=True)
    script.write_text(LAUNCHER.format(python=sys.executable), encoding="utf-8", newline="\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


# sys.path[0] is the launcher's folder, where aerender_sim.py is.
LAUNCHER = """#!{python} -S
import time
STARTED = time.time()
import aerender_sim
aerender_sim.run(STARTED)
"""


def _windows_launcher(script: Path) -> Path:
    """Windows cannot execute a shebang script, and nexrender spawns the binary
    without a shell (Node refuses .cmd files that way). So build ``aerender.exe``
    the way pip builds console scripts: distlib's launcher, a shebang naming
    this interpreter, then a zip whose ``__main__.py`` is the simulator."""
    bits = "64" if struct.calcsize("P") == 8 else "32"
    arm = "-arm" if platform.machine().lower() in ("arm64", "aarch64") else ""
    spec = importlib.util.find_spec("pip")
    launcher = (Path(spec.origin).parent / "_vendor" / "distlib" / f"t{bits}{arm}.exe"
                if spec and spec.origin else None)
    if launcher is None or not launcher.is_file():
        raise RuntimeError("Installing the simulator on Windows needs pip in the venv "
                           "(its launcher becomes aerender.exe)")
    executable = sys.executable
    if " " in executable:
        executable = f'"{executable}"'
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("__main__.py", script.read_bytes())
    exe = script.with_name("aerender.exe")
    exe.write_bytes(launcher.read_bytes() + f"#!{executable}\n".encode()
                    + archive.getvalue())
    return exe
