"""Turning a client's project path into a path inside the Dropbox folder, or refusing it.

Clients send Windows paths or the macOS path of the artist's own Dropbox. The
manager renders whatever file the path names, so a path must never reach
outside ``DROPBOX_PATH``: no ``..``, no other drive or network share, no
symlink out of the folder. ``DROPBOX_PATH`` is a Windows path in production
and a POSIX path on Linux/macOS machines and in tests; its form decides how
a path is read, whatever the OS running the check.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlsplit

from django.conf import settings

# The job row stores 1024 characters; Windows long paths go to 32767, but no
# sane project path gets anywhere near this.
MAX_PATH_CHARS = 1000

# Windows opens a device, not a file, for these names (whatever the extension).
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{kind}{n}" for kind in ("COM", "LPT") for n in list("123456789") + ["¹", "²", "³"]
}
_WINDOWS_FORBIDDEN = set('<>:"|?*')
_DRIVE = re.compile(r"^[A-Za-z]:")


class PathError(ValueError):
    """The path is not acceptable; ``message`` says why, for the client."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ResolvedPath:
    path: str  # the file inside DROPBOX_PATH, in the root's own notation
    key: str  # case-folded real path: two submissions of one project share it


def _root() -> tuple[PurePath, bool]:
    raw = str(settings.DROPBOX_PATH)
    windows = bool(_DRIVE.match(raw)) or raw.startswith(("\\\\", "//"))
    root = PureWindowsPath(raw) if windows else PurePosixPath(raw)
    return root, windows


def _check_text(raw) -> str:
    if not isinstance(raw, str):
        raise PathError("The path must be a string.")
    text = raw.strip()
    if not text:
        raise PathError("The path is empty.")
    if len(text) > MAX_PATH_CHARS:
        raise PathError(f"The path is longer than {MAX_PATH_CHARS} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise PathError("The path contains control characters.")
    # Both separators count: a macOS name may hold "\" and Windows reads it as one.
    for part in re.split(r"[\\/]", text):
        # Windows drops trailing dots and spaces, so "..." and ".. " mean "..".
        if part not in ("", ".") and not part.rstrip(". "):
            raise PathError("The path may not contain '..' components.")
    return text


def _from_mac(text: str) -> list[str] | None:
    """The parts after the Dropbox folder of a /Users/<name>/<Dropbox folder>/ path."""
    parts = text.split("/")
    if len(parts) < 4 or parts[0] != "" or parts[1] != "Users" or not parts[2]:
        return None
    folders = sorted((f.strip("/").split("/") for f in settings.MAC_DROPBOX_FOLDERS),
                     key=len, reverse=True)
    for folder in folders:
        here = parts[3 : 3 + len(folder)]
        if [p.casefold() for p in here] == [p.casefold() for p in folder]:
            return [p for p in parts[3 + len(folder) :] if p not in ("", ".")]
    return None


def _inside(path: PurePath, root: PurePath, windows: bool) -> bool:
    fold = (lambda s: s.casefold()) if windows else (lambda s: s)
    if len(path.parts) < len(root.parts):
        return False
    return all(fold(a) == fold(b) for a, b in zip(path.parts, root.parts, strict=False))


def _check_windows(path: PureWindowsPath, root: PureWindowsPath) -> None:
    if path.drive.startswith(("\\\\", "//")):
        raise PathError("Network paths (\\\\server\\share) are not accepted.")
    if not path.drive or not path.root:
        raise PathError("The path must be absolute (C:\\Users\\...\\Dropbox\\...).")
    if path.drive.casefold() != root.drive.casefold():
        raise PathError(f"The path is on drive {path.drive}, the Dropbox folder on "
                        f"{root.drive}.")
    for part in path.parts[1:]:
        if _WINDOWS_FORBIDDEN & set(part):
            raise PathError(f"The path contains a character Windows does not allow: {part!r}")
        if part.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
            raise PathError(f"{part!r} is a Windows device name, not a file.")


def _real(path: PurePath, windows: bool) -> PurePath | None:
    """``path`` with symlinks resolved, when it belongs to this machine's filesystem."""
    if windows != (os.name == "nt"):
        return None
    try:
        return Path(path).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise PathError(f"The path cannot be resolved: {exc.__class__.__name__}.") from None


def _resolve(raw) -> ResolvedPath:
    text = _check_text(raw)
    root, windows = _root()
    flavour = PureWindowsPath if windows else PurePosixPath
    if windows and text.startswith(("\\\\", "//")):
        raise PathError("Network paths (\\\\server\\share) are not accepted.")

    outside = PathError(
        f"The path is not inside the Dropbox folder ({root}). macOS paths must start "
        f"with /Users/<name>/ followed by one of: {', '.join(settings.MAC_DROPBOX_FOLDERS)}."
    )
    candidate = flavour(text)
    if not _inside(candidate, root, windows):
        rest = _from_mac(text)
        if rest is not None:
            candidate = root.joinpath(*rest)
        elif text.startswith("/"):
            raise outside
        elif not windows:
            raise PathError("The path must be absolute.")
    if windows:
        _check_windows(candidate, root)
    if not _inside(candidate, root, windows) or len(candidate.parts) == len(root.parts):
        raise outside
    # Written the way DROPBOX_PATH is, whatever case the client used.
    candidate = root.joinpath(*candidate.parts[len(root.parts) :])
    path = str(candidate)
    if len(path) > MAX_PATH_CHARS:
        raise PathError(f"The converted path is longer than {MAX_PATH_CHARS} characters.")

    real = _real(candidate, windows)
    if real is not None:
        real_root = _real(root, windows)
        if not _inside(real, real_root, windows) or real == real_root:
            raise PathError("The path leads outside the Dropbox folder (through a symlink).")
        path_for_key = real
    else:
        path_for_key = candidate
    key = str(path_for_key).casefold()
    if len(key) > MAX_PATH_CHARS:
        raise PathError(f"The real path is longer than {MAX_PATH_CHARS} characters.")
    return ResolvedPath(path=path, key=key)


def resolve_project_path(raw) -> ResolvedPath:
    """The project file ``raw`` names inside DROPBOX_PATH; PathError if it is not there."""
    return _resolve(raw)


def resolve_source_path(raw) -> str:
    """A ``file:///`` URI for an asset file inside DROPBOX_PATH (path or file:// URI)."""
    resolved = resolve_source_file(raw)
    _, windows = _root()
    return (PureWindowsPath if windows else PurePosixPath)(resolved.path).as_uri()


def resolve_source_file(raw) -> ResolvedPath:
    """A source file inside DROPBOX_PATH, given as a path or a file:// URI."""
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) \
            and not _DRIVE.match(text):
        try:
            parts = urlsplit(text)
        except ValueError:
            raise PathError("The file:// URI is malformed.") from None
        if parts.scheme.lower() != "file":
            raise PathError("Only files inside the Dropbox folder are accepted (a path or a "
                            "file:// URI), not URLs.")
        if parts.netloc not in ("", "localhost"):
            raise PathError("file:// URIs naming another host are not accepted.")
        if parts.query or parts.fragment:
            raise PathError("file:// URIs may not have a query or fragment.")
        text = unquote(parts.path)
        if re.match(r"^/[A-Za-z]:", text):
            text = text[1:]
    elif isinstance(text, str) and ":" in text.split("/")[0] and not _DRIVE.match(text):
        raise PathError("Only files inside the Dropbox folder are accepted, not URLs.")
    return _resolve(text)
