"""The log viewer: one section per attempt, AE's errors and warnings marked by the
rules the render node reads the output with, the whole log to download."""

from __future__ import annotations

import re

import pytest

from jobs.models import Job, JobLog, Status
from jobs.web.logs import sections
from tests.helpers.aelogs import sample_lines

pytestmark = pytest.mark.django_db

TWO_ATTEMPTS = """=== attempt 1 on render-01 at 2025-03-01 12:00:00 UTC ===
aerender version 24.0x0
PROGRESS:  0:00:00:01 (1): 0 Seconds
aerender ERROR: After Effects can not render for aerender: another instance is running
=== attempt 2 on render-02 at 2025-03-01 12:05:00 UTC ===
WARNING:After Effects warning: logged one error  error: Unable to Render: File Not Found /x.mov
WARNING:After Effects warning: Grouped_Message_{x}Text Layer: Font family: Roboto, Font style: Bold
=== encoding with preset web ===
Total Time Elapsed: 3 Sec
"""


def test_attempts_become_sections_with_their_lines_marked():
    found = sections(TWO_ATTEMPTS)

    assert [(s.attempt, s.node, s.started.isoformat()) for s in found] == [
        (1, "render-01", "2025-03-01T12:00:00+00:00"),
        (2, "render-02", "2025-03-01T12:05:00+00:00")]
    assert [line.kind for line in found[0].lines] == ["", "frame", "error"]
    assert [line.kind for line in found[1].lines] == ["error", "warning", "step", ""]
    assert (found[0].errors, found[1].errors, found[1].warnings) == (1, 1, 1)


def test_real_logs_are_marked_as_the_reader_reads_them():
    # tests/data/aelogs/03_*: a missing composition and missing fonts, as a user posted it.
    found = sections("\n".join(sample_lines("03_")))
    marked = [(line.kind, line.text[:40]) for section in found for line in section.lines
              if line.kind]
    assert marked == [("warning", "WARNING:After Effects warning: Grouped_M"),
                      ("warning", "WARNING:After Effects warning: Grouped_M"),
                      ("error", "aerender ERROR: No comp was found with t")]


def test_a_render_line_that_only_looks_like_an_attempt_marker_is_a_line():
    # A render's output is anyone's text (an ffmpeg source's title, say): an impossible
    # date or a form feed in it must not take the viewer down.
    text = ("=== attempt 1 on render-01 at 2025-03-01 12:00:00 UTC ===\n"
            "frame 1\x0c=== attempt 2 on x at 2024-13-45 99:99:99 UTC ===\n"
            "=== attempt 9999999999999 on x at 2025-03-01 12:00:00 UTC ===\n"
            "done\n")
    found = sections(text)
    assert [section.attempt for section in found] == [1]
    assert [line.number for line in found[0].lines] == [2, 3, 4]
    assert found[0].lines[0].text.startswith("frame 1\x0c")
    assert found[0].lines[1].kind == "step"


def test_the_viewer_page_and_the_download(browser_user, user):
    job = Job.objects.create(user=user, status=Status.FAILED)
    JobLog.objects.create(job=job, head=TWO_ATTEMPTS, tail="")

    page = browser_user.get(f"/jobs/{job.pk}/log").content.decode()
    download = browser_user.get(f"/jobs/{job.pk}/log.txt")

    assert 'id="attempt-1"' in page and 'id="attempt-2"' in page
    assert re.search(r'<span class="ln ln-error" data-n="4">aerender ERROR: After Effects can '
                     r'not render', page)
    assert '<time class="local" datetime="2025-03-01T12:05:00+00:00"' in page
    assert 'id="log-search"' in page and 'id="log-wrap"' in page
    assert f'href="/jobs/{job.pk}/log.txt" id="log-download" download' in page
    assert download["Content-Disposition"] == f'attachment; filename="job-{str(job.pk)[:8]}.log"'
    assert download.content.decode() == TWO_ATTEMPTS


def test_no_log_yet(browser_user, user):
    job = Job.objects.create(user=user, status=Status.QUEUED)
    assert "no render output yet" in browser_user.get(f"/jobs/{job.pk}/log").content.decode()
