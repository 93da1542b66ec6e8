import os
import sys
from pathlib import Path

import pytest

from jobs.submission.paths import (
    MAX_PATH_CHARS,
    PathError,
    resolve_project_path,
    resolve_source_path,
)

WINDOWS_ROOT = r"C:\Users\Studio\Dropbox"


@pytest.fixture
def windows_dropbox(settings):
    """The production layout, read as Windows paths whatever OS runs the test."""
    settings.DROPBOX_PATH = WINDOWS_ROOT
    return WINDOWS_ROOT


# --- Windows DROPBOX_PATH ----------------------------------------------------------


@pytest.mark.parametrize("raw", [
    r"C:\Users\Studio\Dropbox\projects\Spot 30s.aep",
    "C:/Users/Studio/Dropbox/projects/Spot 30s.aep",
    r"c:\users\studio\DROPBOX\projects\Spot 30s.aep",
    r"C:\Users\Studio\Dropbox\.\projects\\Spot 30s.aep",
    "/Users/alice/Dropbox/projects/Spot 30s.aep",
    "/Users/alice/Library/CloudStorage/Dropbox/projects/Spot 30s.aep",
    "/Users/alice/Dropbox (Team)/projects/Spot 30s.aep",
    "  /Users/bob/dropbox/projects/Spot 30s.aep  ",
])
def test_windows_paths_land_in_dropbox(windows_dropbox, raw):
    resolved = resolve_project_path(raw)

    assert resolved.path == r"C:\Users\Studio\Dropbox\projects\Spot 30s.aep"
    assert resolved.key == r"c:\users\studio\dropbox\projects\spot 30s.aep"


def test_team_folder_setting_is_honoured(windows_dropbox, settings):
    settings.MAC_DROPBOX_FOLDERS = ["Dropbox (Studio Team)"]

    resolved = resolve_project_path("/Users/alice/Dropbox (Studio Team)/a/b.aep")

    assert resolved.path == r"C:\Users\Studio\Dropbox\a\b.aep"
    with pytest.raises(PathError):
        resolve_project_path("/Users/alice/Dropbox/a/b.aep")


@pytest.mark.parametrize(("raw", "says"), [
    (r"C:\Users\Studio\Dropbox\..\secrets.aep", "'..'"),
    (r"C:\Users\Studio\Dropbox\projects\..\..\x.aep", "'..'"),
    (r"C:\Users\Studio\Dropbox\projects\...\x.aep", "'..'"),
    ("/Users/alice/Dropbox/../../etc/x.aep", "'..'"),
    ("/Users/alice/Dropbox/projects/..\\..\\x.aep", "'..'"),
    (r"D:\Users\Studio\Dropbox\x.aep", "drive D:"),
    (r"\\fileserver\share\x.aep", "Network paths"),
    ("//fileserver/share/x.aep", "Network paths"),
    (r"\\?\C:\Users\Studio\Dropbox\x.aep", "Network paths"),
    (r"projects\x.aep", "absolute"),
    (r"C:projects\x.aep", "absolute"),
    (r"\Users\Studio\Dropbox\x.aep", "absolute"),
    (r"C:\Windows\System32\x.aep", "not inside the Dropbox folder"),
    (r"C:\Users\Studio\Dropbox", "not inside the Dropbox folder"),
    (r"C:\Users\Studio\DropboxOther\x.aep", "not inside the Dropbox folder"),
    ("/Users/alice/Documents/x.aep", "not inside the Dropbox folder"),
    ("/Volumes/Dropbox/x.aep", "not inside the Dropbox folder"),
    ("C:\\Users\\Studio\\Dropbox\\x\x00.aep", "control characters"),
    ("C:\\Users\\Studio\\Dropbox\\x\n.aep", "control characters"),
    ("", "empty"),
    ("   ", "empty"),
    (r"C:\Users\Studio\Dropbox\x.aep:hidden", "does not allow"),
    (r"C:\Users\Studio\Dropbox\what?.aep", "does not allow"),
    (r"C:\Users\Studio\Dropbox\CON.aep", "device name"),
    (r"C:\Users\Studio\Dropbox\projects\lpt1", "device name"),
])
def test_windows_refusals(windows_dropbox, raw, says):
    with pytest.raises(PathError) as refused:
        resolve_project_path(raw)

    assert says in refused.value.message


def test_overlong_paths_are_refused(windows_dropbox):
    raw = WINDOWS_ROOT + "\\" + "a" * MAX_PATH_CHARS + ".aep"

    with pytest.raises(PathError, match="longer than"):
        resolve_project_path(raw)


@pytest.mark.parametrize("raw", [None, 42, ["C:\\x.aep"], {"path": "x"}])
def test_non_strings_are_refused(windows_dropbox, raw):
    with pytest.raises(PathError, match="string"):
        resolve_project_path(raw)


# --- POSIX DROPBOX_PATH (Linux and macOS render nodes, tests) ------------------------------


def test_posix_paths_land_in_dropbox(dropbox):
    inside = resolve_project_path(str(dropbox / "projects" / "spot.aep"))
    converted = resolve_project_path("/Users/alice/Dropbox/projects/spot.aep")

    assert inside.path == str(dropbox / "projects" / "spot.aep")
    assert converted.path == inside.path
    assert converted.key == inside.key == str(
        (dropbox / "projects" / "spot.aep").resolve()).casefold()


def test_posix_keys_ignore_case(dropbox):
    lower = resolve_project_path("/Users/alice/Dropbox/projects/spot.aep")
    upper = resolve_project_path("/Users/alice/Dropbox/Projects/SPOT.aep")

    assert lower.key == upper.key
    assert Path(upper.path).parts[-2:] == ("Projects", "SPOT.aep")


@pytest.mark.parametrize(("rel", "says"), [
    ("{root}/../outside.aep", "'..'"),
    ("{root}/projects/../../outside.aep", "'..'"),
    ("projects/spot.aep", "absolute"),
    ("/etc/passwd", "not inside the Dropbox folder"),
    ("{root}", "not inside the Dropbox folder"),
    ("{root}-evil/x.aep", "not inside the Dropbox folder"),
    ("{root}/x\x1b.aep", "control characters"),
    ("/Users/alice/Dropbox/a/\x00b.aep", "control characters"),
])
def test_posix_refusals(dropbox, rel, says):
    with pytest.raises(PathError) as refused:
        resolve_project_path(rel.format(root=dropbox))

    assert says in refused.value.message


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
class TestSymlinks:
    def test_a_link_out_of_dropbox_is_refused(self, dropbox, tmp_path):
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.aep").write_text("{}")
        (dropbox / "projects" / "escape").symlink_to(outside, target_is_directory=True)

        for raw in (dropbox / "projects" / "escape" / "secret.aep",
                    dropbox / "projects" / "escape" / "not-yet" / "synced.aep"):
            with pytest.raises(PathError, match="symlink"):
                resolve_project_path(str(raw))
        with pytest.raises(PathError, match="symlink"):
            resolve_project_path("/Users/alice/Dropbox/projects/escape/secret.aep")

    def test_a_linked_file_out_of_dropbox_is_refused(self, dropbox, tmp_path):
        (tmp_path / "secret.aep").write_text("{}")
        (dropbox / "projects" / "spot.aep").symlink_to(tmp_path / "secret.aep")

        with pytest.raises(PathError, match="symlink"):
            resolve_project_path(str(dropbox / "projects" / "spot.aep"))

    def test_a_link_inside_dropbox_shares_the_real_files_key(self, dropbox):
        (dropbox / "projects" / "real").mkdir()
        (dropbox / "projects" / "alias").symlink_to(dropbox / "projects" / "real")

        via_link = resolve_project_path(str(dropbox / "projects" / "alias" / "spot.aep"))
        direct = resolve_project_path(str(dropbox / "projects" / "real" / "spot.aep"))

        assert Path(via_link.path).parts[-2:] == ("alias", "spot.aep")
        assert via_link.key == direct.key

    def test_a_symlinked_dropbox_root_still_works(self, tmp_path, settings):
        real = tmp_path / "real-dropbox"
        (real / "projects").mkdir(parents=True)
        (tmp_path / "Dropbox").symlink_to(real, target_is_directory=True)
        settings.DROPBOX_PATH = str(tmp_path / "Dropbox")

        resolved = resolve_project_path("/Users/alice/Dropbox/projects/spot.aep")

        assert resolved.path == str(tmp_path / "Dropbox" / "projects" / "spot.aep")

    def test_a_symlink_loop_is_refused(self, dropbox):
        loop = dropbox / "projects" / "loop"
        os.symlink(loop, loop)

        with pytest.raises(PathError):
            resolve_project_path(str(loop / "spot.aep"))


# --- Asset sources -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    r"C:\Users\Studio\Dropbox\footage\logo 1.png",
    "file:///C:/Users/Studio/Dropbox/footage/logo%201.png",
    "file://localhost/C:/Users/Studio/Dropbox/footage/logo%201.png",
    "/Users/alice/Dropbox/footage/logo 1.png",
    "file:///Users/alice/Dropbox/footage/logo%201.png",
])
def test_sources_become_file_uris(windows_dropbox, raw):
    assert resolve_source_path(raw) == "file:///C:/Users/Studio/Dropbox/footage/logo%201.png"


def test_posix_sources_become_file_uris(dropbox):
    uri = resolve_source_path("/Users/alice/Dropbox/footage/logo.png")

    assert uri == (dropbox / "footage" / "logo.png").as_uri()


@pytest.mark.parametrize(("raw", "says"), [
    ("https://example.com/logo.png", "not URLs"),
    ("http://169.254.169.254/latest/meta-data", "not URLs"),
    ("ftp://example.com/logo.png", "not URLs"),
    ("data:image/png;base64,iVBORw0KGgo=", "not URLs"),
    ("javascript:alert(1)", "not URLs"),
    ("file://fileserver/share/logo.png", "another host"),
    ("file:///C:/Windows/win.ini", "not inside the Dropbox folder"),
    ("file:///C:/Users/Studio/Dropbox/%2e%2e/secret.png", "'..'"),
    ("file:///C:/Users/Studio/Dropbox/logo%00.png", "control characters"),
    ("file:///C:/Users/Studio/Dropbox/logo.png?x=1", "query"),
    (r"C:\Users\Studio\Dropbox\..\logo.png", "'..'"),
])
def test_source_refusals(windows_dropbox, raw, says):
    with pytest.raises(PathError) as refused:
        resolve_source_path(raw)

    assert says in refused.value.message


# --- A job's files on this machine, checked where they are opened --------------------------


def test_stored_paths_are_found_under_this_machines_roots(settings, tmp_path):
    from jobs.submission.paths import dropbox_file, dropbox_relative, local_path, output_file

    settings.DROPBOX_PATH = str(tmp_path / "Dropbox")
    settings.RENDER_OUTPUT_DIR = str(tmp_path / "Dropbox" / "renders")

    assert dropbox_file("projects/a b.aep") == tmp_path / "Dropbox" / "projects" / "a b.aep"
    assert dropbox_file("projects\\a.aep") == tmp_path / "Dropbox" / "projects" / "a.aep"
    assert output_file("spot_1.mov") == tmp_path / "Dropbox" / "renders" / "spot_1.mov"
    assert dropbox_relative(tmp_path / "Dropbox" / "x" / "y.aep") == "x/y.aep"
    # Rows from before paths were relative: absolute, inside this machine's folder.
    assert dropbox_file(str(tmp_path / "Dropbox" / "p.aep")) == tmp_path / "Dropbox" / "p.aep"
    for bad in ("", "../etc/passwd", "a/../../b", "/etc/passwd", "C:\\Windows\\x.aep", "..."):
        with pytest.raises(PathError):
            dropbox_file(bad)
    settings.DROPBOX_PATH = WINDOWS_ROOT
    assert local_path("projects/a.aep") == WINDOWS_ROOT + "\\projects\\a.aep"


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_a_symlink_swapped_in_while_a_file_is_opened_is_refused(settings, tmp_path,
                                                               monkeypatch):
    from jobs.submission import paths
    from jobs.submission.paths import contained, open_contained

    settings.DROPBOX_PATH = str(tmp_path / "Dropbox")
    inside = tmp_path / "Dropbox" / "out.mov"
    inside.parent.mkdir()
    inside.write_bytes(b"render")
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    real = contained(inside)

    with open_contained(real) as handle:  # nothing moved: the file itself
        assert handle.read() == b"render"

    # Swapped for a link out between the check and the open, and back right after it.
    def racing_open(path, mode):
        inside.rename(tmp_path / "parked")
        inside.symlink_to(secret)
        handle = open(path, mode)  # noqa: SIM115  (returned, as open() does)
        inside.unlink()
        (tmp_path / "parked").rename(inside)
        return handle

    monkeypatch.setattr(paths, "open", racing_open, raising=False)
    with pytest.raises(PathError, match="changed while it was being opened"):
        open_contained(real)
