"""Installs the aerender simulator (simulator/ in the repo) where nexrender may patch it.

nexrender rewrites ``Scripts/Startup/commandLineRenderer.jsx`` beside the
aerender binary on every start, so the simulator always runs from a copy,
never from the repository folder.
"""

from __future__ import annotations

import importlib.util
import io
import platform
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
    # The interpreter running the manager has imageio_ffmpeg (for .mov/.mp4).
    lines = script.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = f"#!{sys.executable}\n"
    script.write_text("".join(lines), encoding="utf-8", newline="\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if sys.platform == "win32":
        return _windows_launcher(script)
    return script


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
