"""Publishing into the output folder: the final rename retried while something
holds the target, a partial name per attempt, nothing deleted that the
attempt did not write, and stops honoured while copying from another volume."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from jobs.node import interrupt, publish
from jobs.node.interrupt import Interrupted
from jobs.node.publish import PublishError


@pytest.fixture
def result(tmp_path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    path = work / "result.avi"
    path.write_bytes(b"RIFF" + os.urandom(4096))
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "Dropbox" / "renders"


def entries(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_publish_moves_the_file_in_under_its_name(result, folder, settings):
    data = result.read_bytes()
    published = publish.publish(result, folder, "spot_1234abcd.avi", tag="a1")
    assert published.path == folder / "spot_1234abcd.avi"
    assert published.path.read_bytes() == data and published.size == len(data)
    assert entries(folder) == ["spot_1234abcd.avi"] and not result.exists()
    assert published.still_ours()


def test_a_held_target_is_retried_until_it_is_free(result, folder, settings):
    # A folder in the target's place makes the rename fail for real (EISDIR on
    # Linux, access denied on Windows), as a file Dropbox holds open does on Windows.
    settings.PUBLISH_RETRY_SECONDS = 20
    folder.mkdir(parents=True)
    (folder / "spot.avi").mkdir()
    released = threading.Timer(1.0, (folder / "spot.avi").rmdir)
    released.start()
    began = time.monotonic()
    published = publish.publish(result, folder, "spot.avi", tag="a1")
    assert time.monotonic() - began >= 1.0
    assert published.path.is_file() and entries(folder) == ["spot.avi"]


def test_a_target_held_too_long_is_a_publish_failure_that_deletes_nothing_foreign(
        result, folder, settings):
    settings.PUBLISH_RETRY_SECONDS = 0.5
    folder.mkdir(parents=True)
    (folder / "spot.avi").mkdir()
    (folder / "spot.avi" / "player-cache").write_text("someone else's")
    other_attempt = folder / ".~spot.avi.b2.partial"
    other_attempt.write_text("another attempt, still copying")
    with pytest.raises(PublishError, match=r"cannot replace .*spot\.avi.*tried \d+ times"):
        publish.publish(result, folder, "spot.avi", tag="a1")
    # Only this attempt's own partial is gone.
    assert entries(folder) == [".~spot.avi.b2.partial", "spot.avi"]
    assert (folder / "spot.avi" / "player-cache").read_text() == "someone else's"
    assert other_attempt.read_text() == "another attempt, still copying"


def test_a_windows_sharing_violation_is_retried(result, folder, settings, monkeypatch):
    # ERROR_SHARING_VIOLATION (WinError 32) exists on Windows only, where a player
    # or Dropbox holding the old file open makes os.replace fail: simulated here
    # because no Linux filesystem condition produces it.
    settings.PUBLISH_RETRY_SECONDS = 20
    real_replace = os.replace
    failures = []

    def held_open(src, dst):
        if Path(dst).name == "spot.avi" and len(failures) < 3:
            failures.append(dst)
            error = PermissionError(13, "The process cannot access the file because it is "
                                        "being used by another process")
            error.winerror = 32
            raise error
        return real_replace(src, dst)

    monkeypatch.setattr(publish.os, "replace", held_open)
    published = publish.publish(result, folder, "spot.avi", tag="a1")
    assert len(failures) == 3 and published.path.is_file()
    assert entries(folder) == ["spot.avi"]


def test_withdraw_removes_only_the_file_this_attempt_wrote(result, folder, tmp_path):
    published = publish.publish(result, folder, "spot.avi", tag="a1")
    # Another attempt published meanwhile: a different file under the same name.
    newer = tmp_path / "newer.avi"
    newer.write_bytes(b"the newer attempt's render")
    os.replace(newer, folder / "spot.avi")
    assert not published.still_ours()
    assert published.withdraw() is False
    assert (folder / "spot.avi").read_bytes() == b"the newer attempt's render"

    mine = tmp_path / "work" / "again.avi"
    mine.write_bytes(b"mine")
    published = publish.publish(mine, folder, "again.avi", tag="a2")
    assert published.withdraw() is True
    assert not (folder / "again.avi").exists()


def other_volume(path: Path) -> Path | None:
    for candidate in (Path("/dev/shm"), Path("/run/user") / str(os.getuid())):
        if candidate.is_dir() and os.access(candidate, os.W_OK) and \
                candidate.stat().st_dev != path.stat().st_dev:
            return candidate
    return None


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """An output folder on another volume than the render's (a tmpfs): publishing
    there is a copy. Removed afterwards."""
    volume = other_volume(tmp_path)
    if volume is None:
        pytest.skip("no second writable volume (tmpfs) on this machine")
    folder = Path(volume) / f"publish-test-{os.getpid()}"
    yield folder
    for leftover in folder.glob("*") if folder.exists() else []:
        leftover.unlink()
    if folder.exists():
        folder.rmdir()


def test_a_copy_from_another_volume_stops_when_asked(result, elsewhere, tmp_path):
    big = tmp_path / "work" / "big.avi"
    big.write_bytes(os.urandom(4 * publish.COPY_CHUNK))
    chunks = []

    def stop_after_two():
        chunks.append(1)
        return Interrupted("shutdown", requeue=True) if len(chunks) >= 2 else None

    with interrupt.watching(stop_after_two), pytest.raises(Interrupted):
        publish.publish(big, elsewhere, "big.avi", tag="a1")
    assert len(chunks) == 2
    assert entries(elsewhere) == []  # the partial copy is gone
    assert big.stat().st_size == 4 * publish.COPY_CHUNK  # the render is still there
    published = publish.publish(big, elsewhere, "big.avi", tag="a2")
    assert published.size == 4 * publish.COPY_CHUNK and not big.exists()


def test_a_rename_does_not_say_it_is_publishing(result, folder):
    # A rename is over at once: no event for a phase nobody could see.
    said = []
    publish.publish(result, folder, "renamed.avi", tag="a1", before_copy=lambda: said.append(1))
    assert said == []


def test_a_copy_from_another_volume_says_it_is_publishing_first(result, elsewhere, tmp_path):
    # A copy may take minutes: the node shows its publishing phase before it starts.
    said = []
    copied = tmp_path / "work" / "copied.avi"
    copied.write_bytes(os.urandom(2 * publish.COPY_CHUNK))

    def before_copy():
        said.append(elsewhere.exists() and entries(elsewhere))

    published = publish.publish(copied, elsewhere, "copied.avi", tag="a2",
                                before_copy=before_copy)
    assert said == [[]]  # once, before a byte was copied
    assert published.size == 2 * publish.COPY_CHUNK and not copied.exists()
