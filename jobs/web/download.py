"""Streaming a render to the browser or an API client, with ``Range``.

Who may download is decided by the caller (a session, a token, or a signed
link from jobs.links).

A render can be many gigabytes, so the file is never held in memory: under
WSGI the response is a plain iterator of chunks; under ASGI (daphne) it is
an asynchronous one whose reads run in a thread, so the event loop that also
serves the dashboard and the websockets never waits for the disk. (Django
turns a synchronous iterator into a list under ASGI: the whole file, before
the first byte.) How fast chunks are read is paced by the client's socket:
see rendermanager.backpressure.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
from pathlib import Path
from typing import BinaryIO

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


def etag(stat) -> str:
    """A strong validator of the file's content: its size and modification time."""
    return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def if_range_matches(header: str | None, stat) -> bool:
    """Whether a ``Range`` may be served under ``If-Range`` (RFC 9110 13.1.5): the
    client's copy is the current file, named by our ETag or its exact date."""
    if not header:
        return True
    header = header.strip()
    if header.startswith(('"', "W/")):
        return header == etag(stat)
    return parse_http_date_safe(header) == int(stat.st_mtime)


def _chunks(handle: BinaryIO, start: int, length: int):
    handle.seek(start)
    while length > 0:
        data = handle.read(min(CHUNK_BYTES, length))
        if not data:
            break
        length -= len(data)
        yield data


class FileRangeResponse(StreamingHttpResponse):
    """``length`` bytes of the open file ``handle`` from ``start``, one chunk in memory
    at a time; the response closes the file.

    Iterated synchronously (WSGI, the test client) it reads in the caller's
    thread; iterated asynchronously (Django's ASGI handler uses ``__aiter__``)
    each read runs in a worker thread.
    """

    def __init__(self, handle: BinaryIO, start: int, length: int, **kwargs):
        self._span = (handle, start, length)
        super().__init__(_chunks(handle, start, length), **kwargs)
        self._resource_closers.append(handle.close)

    async def __aiter__(self):
        handle, start, length = self._span
        await asyncio.to_thread(handle.seek, start)
        while length > 0:
            data = await asyncio.to_thread(handle.read, min(CHUNK_BYTES, length))
            if not data:
                break
            length -= len(data)
            yield data


def file_response(request, path: Path, filename: str | None = None):
    """Stream the file at ``path`` as an attachment (see ``handle_response``).

    Raises OSError when the file cannot be opened or read.
    """
    handle = open(path, "rb")  # noqa: SIM115  (the response closes it)
    try:
        return handle_response(request, handle, filename or path.name)
    except BaseException:
        handle.close()
        raise


def handle_response(request, handle: BinaryIO, filename: str):
    """Stream the open file ``handle`` as the attachment ``filename``, honouring a
    single ``Range`` and ``If-Range``. The response closes the file.

    Raises OSError when the file cannot be read.
    """
    stat = os.fstat(handle.fileno())
    size = stat.st_size

    wanted = parse_range(request.META.get("HTTP_RANGE"), size)
    # A resumed download of a file that changed since must start over.
    if wanted is not None and not if_range_matches(request.META.get("HTTP_IF_RANGE"), stat):
        wanted = None

    if wanted == "unsatisfiable":
        handle.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response

    if wanted is None:
        start, length, status = 0, size, 200
    else:
        first, last = wanted
        start, length, status = first, last - first + 1, 206

    response = FileRangeResponse(handle, start, length, status=status)
    content_type, encoding = mimetypes.guess_type(filename)
    response["Content-Type"] = content_type or "application/octet-stream"
    if encoding:
        # A .gz must arrive as the file, not be unpacked by the browser.
        response["Content-Type"] = "application/octet-stream"
    response["Last-Modified"] = http_date(stat.st_mtime)
    response["ETag"] = etag(stat)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return _ranged(response, start, length, size)


def _ranged(response, start: int, length: int, size: int):
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if response.status_code == 206:
        response["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    return response


def bytes_response(request, data: bytes, *, content_type: str, tag: str, modified):
    """``data`` (a few MB at most: a preview video kept in the database) for a player,
    inline, honouring a single ``Range`` (browsers seek with it) and ``If-Range``.
    ``tag``: a strong validator of this content; ``modified``: when it was made."""
    size = len(data)
    wanted = parse_range(request.META.get("HTTP_RANGE"), size)
    if_range = (request.META.get("HTTP_IF_RANGE") or "").strip()
    if wanted is not None and if_range and if_range != tag:
        wanted = None
    if wanted == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response
    start, last = (0, size - 1) if wanted is None else wanted
    length = max(0, last - start + 1)
    response = HttpResponse(data[start:start + length], content_type=content_type,
                            status=200 if wanted is None else 206)
    response["ETag"] = tag
    response["Last-Modified"] = http_date(modified.timestamp())
    response["Cache-Control"] = "private, max-age=3600"
    return _ranged(response, start, length, size)
