"""Serve files from a directory read-only, with HTTP Range (single and multipart 206), safely.

breezy's HTTP transport reads pack files with ``Range: bytes=a-b,c-d,...`` and expects 206 answers
(multipart/byteranges for several ranges); anything else that asks for a range gets the same. A path
is served only when every component is a plain name and the file is a regular file reached
without symlinks: no ``..``, no absolute paths, nothing outside the root.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.utils.http import http_date

_RANGE_RE = re.compile(r"\s*([0-9]{0,18})\s*-\s*([0-9]{0,18})\s*\Z")
MAX_RANGES = 200


def safe_open(root: Path, rel: str, *, allowed_first: tuple[str, ...] | None = None):
    """Open ``root/rel`` for reading, or raise Http404: one ``os.open(..., O_NOFOLLOW)`` per component."""
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") or "\0" in p or "\\" in p for p in parts):
        raise Http404("no such file")
    if allowed_first is not None and parts[0] not in allowed_first:
        raise Http404("no such file")
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        raise Http404("the directory is not there") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError:
                raise Http404("no such file") from None
            os.close(fd)
            fd = nfd
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Http404("not a file")
        return os.fdopen(fd, "rb"), st
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """``bytes=a-b,c-,-n`` -> inclusive (first, last) pairs within ``size``; [] if none is satisfiable,
    None if the header is not one we understand (then the whole file is sent, as RFC 9110 allows)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    out = []
    for item in spec.split(","):
        m = _RANGE_RE.match(item)
        if not m or (not m[1] and not m[2]):
            return None
        if m[1]:
            first = int(m[1])
            last = int(m[2]) if m[2] else size - 1
            if m[2] and last < first:
                return None
        else:
            first, last = max(size - int(m[2]), 0), size - 1
        if first >= size:
            continue
        out.append((first, min(last, size - 1)))
    if len(out) > MAX_RANGES:
        return None
    return out


def serve(request, root: Path, rel: str, *, allowed_first: tuple[str, ...] | None = None,
          content_type: str = "application/octet-stream"):
    f, st = safe_open(root, rel, allowed_first=allowed_first)
    size = st.st_size
    header = request.headers.get("Range")
    ranges = parse_ranges(header, size) if header else None
    if ranges is None:
        resp = FileResponse(f, content_type=content_type)
        resp["Content-Length"] = str(size)
    elif not ranges:
        f.close()
        resp = HttpResponse(status=416, content_type="text/plain")
        resp["Content-Range"] = f"bytes */{size}"
        return resp
    elif len(ranges) == 1:
        first, last = ranges[0]
        f.seek(first)
        data = f.read(last - first + 1)
        f.close()
        resp = HttpResponse(data, status=206, content_type=content_type)
        resp["Content-Range"] = f"bytes {first}-{last}/{size}"
    else:
        boundary = secrets.token_hex(12)

        def parts():
            try:
                for first, last in ranges:
                    yield (f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
                           f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n").encode()
                    f.seek(first)
                    left = last - first + 1
                    while left:
                        chunk = f.read(min(left, 1 << 16))
                        if not chunk:
                            break
                        left -= len(chunk)
                        yield chunk
                yield f"\r\n--{boundary}--\r\n".encode()
            finally:
                f.close()

        resp = StreamingHttpResponse(parts(), status=206,
                                     content_type=f"multipart/byteranges; boundary={boundary}")
    resp["Accept-Ranges"] = "bytes"
    resp["Last-Modified"] = http_date(st.st_mtime)
    return resp
