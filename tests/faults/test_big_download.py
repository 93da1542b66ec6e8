"""A 2 GiB render downloaded through a real daphne: the first byte comes at once,
the web process does not grow with the file, even for a client that stops
reading for a while, and Range/If-Range behave.

The file is sparse, so it costs no disk; a few marker bytes at known offsets
prove that the right bytes arrive in the right place.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from django.utils.http import http_date

from jobs.links import signed_download_url
from jobs.models import Job, Status
from tests.helpers import browser as browser_helpers

daphne, server = browser_helpers.daphne, browser_helpers.server

pytestmark = pytest.mark.slow

SIZE = 2 * 1024**3
MARKERS = {0: b"FIRST-BYTES", 1024**3: b"ONE-GIB-MARK", SIZE - 10: b"LAST-BYTES"}
MIB = 1024 * 1024


@pytest.fixture
def big_output(farm, user):
    folder = farm.dropbox / "renders"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spot_2gib.mov"
    with open(path, "wb") as handle:
        handle.truncate(SIZE)
        for offset, data in MARKERS.items():
            handle.seek(offset)
            handle.write(data)
    job = Job.objects.create(user=user, client="bravo", status=Status.COMPLETED,
                             output_path="spot_2gib.mov", output_size=SIZE)
    yield job, path
    path.unlink(missing_ok=True)


def daphne_process(base: str) -> psutil.Process:
    port = int(base.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise AssertionError(f"no process listens on port {port}")


class PeakRss:
    """The highest resident size of ``process`` while the block runs."""

    def __init__(self, process: psutil.Process):
        self.process = process
        self.peak = process.memory_info().rss
        self._done = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def link(base: str, job) -> str:
    parts = urlsplit(signed_download_url(job))
    return f"{base}{parts.path}?{parts.query}"


def test_a_2_gib_download_streams_from_the_first_byte_in_bounded_memory(server, big_output):
    job, path = big_output
    url = link(server, job)
    web = daphne_process(server)
    # Warm up: the first request imports the download code and opens the database.
    assert requests.get(url, headers={"Range": "bytes=0-10"}, timeout=30).content \
        == MARKERS[0]
    baseline = web.memory_info().rss

    with PeakRss(web) as rss:
        started = time.monotonic()
        with requests.get(url, stream=True, timeout=60) as response:
            assert response.status_code == 200
            assert response.headers["Content-Length"] == str(SIZE)
            chunks = response.iter_content(MIB)
            first = next(chunks)
            first_byte = time.monotonic() - started
            # A client that stops reading (a laptop lid closed for a moment): the
            # server must wait for it rather than read ahead into memory.
            time.sleep(3)
            received, seen = len(first), {0: first[:len(MARKERS[0])]}
            for chunk in chunks:
                for offset, data in MARKERS.items():
                    if received <= offset < received + len(chunk):
                        seen[offset] = chunk[offset - received: offset - received + len(data)]
                received += len(chunk)
        total = time.monotonic() - started

    growth = (rss.peak - baseline) / MIB
    print(f"\n2 GiB through daphne: first byte {first_byte * 1000:.0f} ms, "
          f"whole file {total:.1f} s, web process RSS +{growth:.1f} MiB")
    assert received == SIZE
    assert first_byte < 1.0
    assert growth < 50, f"daphne grew by {growth:.0f} MiB during the download"
    # Markers that straddle a chunk boundary are checked by the Range requests below.
    for offset, data in seen.items():
        if len(data) == len(MARKERS[offset]):
            assert data == MARKERS[offset]


def test_ranges_of_a_2_gib_file_through_daphne(server, big_output):
    job, path = big_output
    url = link(server, job)
    stat = path.stat()

    for offset, data in MARKERS.items():
        header = f"bytes={offset}-{offset + len(data) - 1}"
        response = requests.get(url, headers={"Range": header}, timeout=30)
        assert response.status_code == 206
        assert response.content == data
        assert response.headers["Content-Range"] == \
            f"bytes {offset}-{offset + len(data) - 1}/{SIZE}"

    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=30)
    assert (tail.status_code, tail.content) == (206, MARKERS[SIZE - 10])

    # Resuming: the validators of the first response open a Range; stale ones restart.
    first = requests.get(url, headers={"Range": "bytes=0-0"}, timeout=30)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert modified == http_date(stat.st_mtime)
    for validator in (etag, modified):
        resumed = requests.get(url, headers={"Range": f"bytes={1024**3}-{1024**3 + 11}",
                                             "If-Range": validator}, timeout=30)
        assert (resumed.status_code, resumed.content) == (206, MARKERS[1024**3])
    for stale in ('"0-0"', http_date(stat.st_mtime - 60), "W/" + etag):
        with requests.get(url, headers={"Range": "bytes=0-9", "If-Range": stale},
                          stream=True, timeout=30) as restarted:
            assert restarted.status_code == 200
            assert restarted.headers["Content-Length"] == str(SIZE)
            assert restarted.raw.read(len(MARKERS[0])) == MARKERS[0]

    beyond = requests.get(url, headers={"Range": f"bytes={SIZE}-"}, timeout=30)
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{SIZE}"
