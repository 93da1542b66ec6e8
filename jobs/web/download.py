"""Streaming a render to the browser or an API client, with ``Range``.

Who may download is decided by the caller (a session, a token, or a signed
link from jobs.links).
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

CHUNK_BYTES = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """The (first, last) byte of a single-range request, None to send everything,
    or "unsatisfiable".

    Several ranges or a malformed header are ignored (the whole file is sent),
    which RFC 9110 allows; a syntactically valid range that misses the file
    is unsatisfiable (416).
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _chunks(path: Path, start: int, length: int):
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0:
            data = handle.read(min(CHUNK_BYTES, length))
            if not data:
                break
            length -= len(data)
            yield data


def file_response(request, path: Path, filename: str | None = None):
    """Stream ``path`` as an attachment, honouring a single ``Range``.

    Raises OSError when the file cannot be opened or read.
    """
    stat = path.stat()
    size = stat.st_size
    filename = filename or path.name
    last_modified = http_date(stat.st_mtime)

    wanted = parse_range(request.META.get("HTTP_RANGE"), size)
    if_range = request.META.get("HTTP_IF_RANGE")
    # A resumed download of a file that changed since must start over.
    if wanted is not None and if_range and parse_http_date_safe(if_range) != int(stat.st_mtime):
        wanted = None

    if wanted == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response

    if wanted is None:
        start, length, status = 0, size, 200
    else:
        first, last = wanted
        start, length, status = first, last - first + 1, 206

    # Open now so that a vanished file fails here, not halfway through the response.
    with open(path, "rb"):
        pass
    response = StreamingHttpResponse(_chunks(path, start, length), status=status)
    content_type, encoding = mimetypes.guess_type(filename)
    response["Content-Type"] = content_type or "application/octet-stream"
    if encoding:
        # A .gz must arrive as the file, not be unpacked by the browser.
        response["Content-Type"] = "application/octet-stream"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = last_modified
    response["Content-Disposition"] = content_disposition_header(True, filename)
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    return response
