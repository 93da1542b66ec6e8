"""Turning a client's project path into a path inside the Dropbox folder, or refusing it;
and finding a job's files again on whichever machine works on it.

Clients send Windows paths or the macOS path of the artist's own Dropbox. The
manager renders whatever file the path names, so a path must never reach
outside ``DROPBOX_PATH``: no ``..``, no other drive or network share, no
symlink out of the folder. ``DROPBOX_PATH`` is a Windows path in production
and a POSIX path on Linux/macOS machines and in tests; its form decides how
a path is read, whatever the OS running the check.

A job stores its files relative to the roots, "/"-separated
(``projects/Spot 30s.aep``; the output relative to ``RENDER_OUTPUT_DIR``),
because every render node has its own Dropbox folder
(``C:\\Users\\<user>\\Dropbox``). Each machine finds them with
``dropbox_file()``/``output_file()`` (lexical: no disk access), and before
a file is read, ``contained()`` resolves symlinks and junctions and refuses a
real path outside the root: a symlink can arrive through Dropbox long after
the submission was checked. ``checked_dropbox_file()`` does both and is what
validation, the engines and the web views call.
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
    path: str  # the file inside DROPBOX_PATH on this machine, in the root's own notation
    key: str  # case-folded real path: two submissions of one project share it
    relative: str = ""  # the file relative to DROPBOX_PATH, "/"-separated: what a job stores


def _flavour(raw: str) -> tuple[PurePath, bool]:
    windows = bool(_DRIVE.match(raw)) or raw.startswith(("\\\\", "//"))
    return (PureWindowsPath(raw) if windows else PurePosixPath(raw)), windows


def _root() -> tuple[PurePath, bool]:
    return _flavour(str(settings.DROPBOX_PATH))


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


def _mac_folder(text: str) -> tuple[list[str], list[str]] | None:
    """(the Dropbox folder, as written, and the parts after it) of a
    /Users/<name>/<Dropbox folder>/ path."""
    parts = text.split("/")
    if len(parts) < 4 or parts[0] != "" or parts[1] != "Users" or not parts[2]:
        return None
    folders = sorted((f.strip("/").split("/") for f in settings.MAC_DROPBOX_FOLDERS),
                     key=len, reverse=True)
    for folder in folders:
        here = parts[3 : 3 + len(folder)]
        if [p.casefold() for p in here] == [p.casefold() for p in folder]:
            return here, [p for p in parts[3 + len(folder) :] if p not in ("", ".")]
    return None


def _from_mac(text: str) -> list[str] | None:
    """The parts after the Dropbox folder of a /Users/<name>/<Dropbox folder>/ path."""
    found = _mac_folder(text)
    return found[1] if found else None


def mac_path(stored: str, *, mac_username: str, output: bool = False,
             submitted: str = "") -> str | None:
    """Where the artist's Mac has a job's file: the macOS -> Dropbox mapping backwards.

    ``stored`` is relative to DROPBOX_PATH (``output``: to RENDER_OUTPUT_DIR, which
    must lie inside DROPBOX_PATH to be on the Mac at all). The Mac's Dropbox folder
    is the one the job was submitted from (``submitted``), else the first of
    MAC_DROPBOX_FOLDERS. None when there is no such path (no macOS username, or
    the file is outside Dropbox).
    """
    name = (mac_username or "").strip()
    if not name or "/" in name:
        return None
    try:
        _, parts = _parts(stored, settings.RENDER_OUTPUT_DIR if output
                          else settings.DROPBOX_PATH, "the folder")
        if output:
            folder = _relative(settings.RENDER_OUTPUT_DIR, settings.DROPBOX_PATH,
                               "the Dropbox folder")
            parts = folder.split("/") + parts
    except PathError:
        return None
    found = _mac_folder(submitted.strip()) if isinstance(submitted, str) else None
    dropbox = found[0] if found else settings.MAC_DROPBOX_FOLDERS[0].strip("/").split("/")
    return "/".join(["", "Users", name, *dropbox, *parts])


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


def _native(path: PurePath, windows: bool) -> bool:
    """Whether ``path`` belongs to this machine's filesystem (so it can be resolved)."""
    return windows == (os.name == "nt")


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

    path_for_key = contained(Path(candidate)) if _native(candidate, windows) else candidate
    key = str(path_for_key).casefold()
    if len(key) > MAX_PATH_CHARS:
        raise PathError(f"The real path is longer than {MAX_PATH_CHARS} characters.")
    relative = "/".join(candidate.parts[len(root.parts):])
    return ResolvedPath(path=path, key=key, relative=relative)


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


# --- A job's files on this machine -------------------------------------------------------


def _under(stored, root_text: str, what: str) -> Path:
    """The file ``stored`` (relative to ``root_text``) names on this machine.

    Lexical only. An absolute ``stored`` (rows from before paths were stored
    relative) is accepted when it lies inside the root of this machine.
    """
    root, parts = _parts(stored, root_text, what)
    return Path(str(root_text)).joinpath(*parts)


def _parts(stored, root_text: str, what: str) -> tuple[PurePath, list[str]]:
    if not isinstance(stored, str) or not stored.strip():
        raise PathError("No file is recorded.")
    root, windows = _flavour(str(root_text))
    text = stored.strip()
    if text.startswith("/") or _DRIVE.match(text) or text.startswith("\\"):
        absolute = PureWindowsPath(text) if windows else PurePosixPath(text)
        if not _inside(absolute, root, windows) or len(absolute.parts) == len(root.parts):
            raise PathError(f"{text} is not inside {what} of this machine ({root}).")
        parts = list(absolute.parts[len(root.parts):])
    else:
        parts = [p for p in re.split(r"[\\/]", text) if p not in ("", ".")]
    if not parts or any(not p.rstrip(". ") for p in parts):
        raise PathError(f"{text!r} is not a file inside {what}.")
    return root, parts


def _relative(path, root_text: str, what: str) -> str:
    root, windows = _flavour(str(root_text))
    absolute = (PureWindowsPath if windows else PurePosixPath)(str(path))
    if not _inside(absolute, root, windows) or len(absolute.parts) == len(root.parts):
        raise PathError(f"{path} is not inside {what} ({root}).")
    return "/".join(absolute.parts[len(root.parts):])


def dropbox_file(stored: str) -> Path:
    """The file a job's stored path (relative to DROPBOX_PATH) names on this machine."""
    return _under(stored, settings.DROPBOX_PATH, "the Dropbox folder")


def output_file(stored: str) -> Path:
    """A job's output (stored relative to RENDER_OUTPUT_DIR) on this machine."""
    return _under(stored, settings.RENDER_OUTPUT_DIR, "the output folder")


def dropbox_relative(path) -> str:
    """What a job stores for ``path``, a file inside DROPBOX_PATH; PathError if outside."""
    return _relative(path, settings.DROPBOX_PATH, "the Dropbox folder")


def output_relative(path) -> str:
    """What a job stores for its published output ``path`` (inside RENDER_OUTPUT_DIR)."""
    return _relative(path, settings.RENDER_OUTPUT_DIR, "the output folder")


def source_file(stored: str) -> Path:
    """A stored asset or timeline source (relative; or, from older rows, an absolute
    path or file:// URI inside this machine's Dropbox folder) on this machine."""
    text = stored.strip() if isinstance(stored, str) else stored
    if isinstance(text, str) and text.lower().startswith("file://"):
        text = unquote(urlsplit(text).path)
        if re.match(r"^/[A-Za-z]:", text):
            text = text[1:]
    return dropbox_file(text)


def contained(path: Path, root=None) -> Path:
    """``path`` with every symlink and junction resolved, if that real path still lies
    inside ``root`` (DROPBOX_PATH unless given); PathError if it does not.

    The one containment rule: the submission, every validation check and each
    engine (right before it opens a file) call it, and read the path it returns.
    The file need not exist yet.
    """
    root = Path(str(settings.DROPBOX_PATH if root is None else root))
    try:
        real, real_root = Path(path).resolve(strict=False), root.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise PathError(f"The path cannot be resolved: {exc.__class__.__name__}.") from None
    windows = os.name == "nt"
    if not _inside(real, real_root, windows) or len(real.parts) == len(real_root.parts):
        where = "the Dropbox folder" if root == Path(str(settings.DROPBOX_PATH)) else str(root)
        raise PathError(f"The path leads outside {where} (through a symlink or junction): "
                        f"{path} is really {real}.")
    return real


def open_contained(real: Path, root=None):
    """Open (binary) a file that ``contained()`` returned, and make sure the handle is that
    file: a symlink swapped in between the check and the open is refused (PathError)."""
    handle = open(real, "rb")  # noqa: SIM115  (the caller owns the handle)
    try:
        again = contained(real, root)
        if not os.path.samestat(os.fstat(handle.fileno()), again.stat()):
            raise PathError("The file changed while it was being opened (a symlink was put "
                            "in its place); it is not read.")
    except BaseException:
        handle.close()
        raise
    return handle


def checked_dropbox_file(stored: str) -> Path:
    """The real path of a job's file inside DROPBOX_PATH on this machine, or PathError."""
    return contained(dropbox_file(stored))


def checked_source_file(stored: str) -> Path:
    """The real path of a stored asset or timeline source, or PathError."""
    return contained(source_file(stored))


def checked_output_file(stored: str) -> Path:
    """The real path of a job's output inside RENDER_OUTPUT_DIR, or PathError."""
    return contained(output_file(stored), settings.RENDER_OUTPUT_DIR)


def local_path(stored: str, output: bool = False) -> str:
    """How a stored path reads on this machine (for people and the API); the stored
    text itself when it names nothing here."""
    root_text = settings.RENDER_OUTPUT_DIR if output else settings.DROPBOX_PATH
    try:
        root, parts = _parts(stored, root_text, "the folder")
    except PathError:
        return stored or ""
    return str(root.joinpath(*parts))
