"""Logs for people: tail and earlier parts with Range, whether the log will grow, download, and a
100 MB log that stays cheap to open."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from .conftest import LOG

pytestmark = pytest.mark.django_db


def url(job_id, run, index=0, suffix="log.txt") -> str:
    return f"/jobs/{job_id}/runs/{run}/jobuilds/{index}/{suffix}"


def test_range_tail_and_earlier(scene):
    c = Client()
    u = url(scene.toolchain.pk, scene.done_run)
    whole = c.get(u)
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == LOG
    assert whole["X-Log-Complete"] == "1" and whole["X-Log-Size"] == str(len(LOG))
    tail = c.get(u, HTTP_RANGE="bytes=-20")
    assert tail.status_code == 206 and tail.content == LOG[-20:]
    assert tail["Content-Range"] == f"bytes {len(LOG) - 20}-{len(LOG) - 1}/{len(LOG)}"
    head = c.get(u, HTTP_RANGE="bytes=0-9")
    assert head.status_code == 206 and head.content == LOG[:10]
    # nothing past the end yet: 416 with the size, which is how the page knows there is nothing new
    past = c.get(u, HTTP_RANGE=f"bytes={len(LOG)}-")
    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{len(LOG)}"


def test_a_growing_log_says_it_is_not_complete(scene):
    c = Client()
    u = url(scene.provider.pk, scene.live_run)
    r = c.get(u)
    assert r["X-Log-Complete"] == "0" and r["X-Log-Size"] == "10"
    scene.driver.log(scene.live_run, 0, 10, b"more\n")
    r = c.get(u, HTTP_RANGE="bytes=10-")
    assert r.status_code == 206 and r.content == b"more\n" and r["X-Log-Complete"] == "0"
    scene.driver.run_jobuild(scene.live_run, 0)
    assert c.get(u)["X-Log-Complete"] == "1"
    # the next jobuild's log has not begun: empty, not complete, not an error
    r = c.get(url(scene.provider.pk, scene.live_run, 1))
    assert r.status_code == 200 and r.content == b"" and r["X-Log-Complete"] == "0"


def test_log_page_and_download(scene):
    c = Client()
    page = c.get(url(scene.toolchain.pk, scene.done_run, suffix="log")).content.decode()
    assert f'data-src="{url(scene.toolchain.pk, scene.done_run)}"' in page and 'data-complete="1"' in page
    assert "Download as text" in page and "log.js" in page
    dl = c.get(url(scene.toolchain.pk, scene.done_run) + "?download=1")
    assert dl["Content-Disposition"] == (f'attachment; filename="job{scene.toolchain.pk}-alice_toolchain-sanity-1.0'
                                         '-attempt1.log"')


def test_attachment_download(scene):
    c = Client()
    r = c.get(url(scene.toolchain.pk, scene.done_run, suffix="attachments/report.html"))
    assert r.status_code == 200 and b"".join(r.streaming_content).startswith(b"<script>")
    assert c.get(url(scene.toolchain.pk, scene.done_run, suffix="attachments/nope.txt")).status_code == 404


@pytest.mark.slow
def test_a_100_mb_log_opens_fast(scene, capsys):
    """The log page never reads the log; the tail is one Range read. Figures go to docs/web.md."""
    drv, run = scene.driver, scene.live_run
    line = b" \x1b[32;01m*\x1b[0m " + b"x" * 90 + b"\n"  # 100 bytes
    n = 1048576 // len(line)
    chunk = line * n + b"\n" * (1048576 - len(line) * n)  # 1 MiB, the chunk limit
    offset = 10
    t0 = time.perf_counter()
    while offset < 100 * 1048576:
        offset = drv.log(run, 0, offset, chunk)
    upload = time.perf_counter() - t0
    c = Client()
    timings = {}
    for name, u, headers in [("log page", url(scene.provider.pk, run, suffix="log"), {}),
                             ("job page", f"/jobs/{scene.provider.pk}/", {}),
                             ("tail 256 KiB", url(scene.provider.pk, run), {"HTTP_RANGE": "bytes=-262144"}),
                             ("earlier 512 KiB", url(scene.provider.pk, run),
                              {"HTTP_RANGE": "bytes=52428800-52953087"})]:
        c.get(u, **headers)  # warm
        t = time.perf_counter()
        r = c.get(u, **headers)
        timings[name] = time.perf_counter() - t
        assert r.status_code in (200, 206)
        if "HTTP_RANGE" in headers:
            assert len(r.content) <= 524288
    with capsys.disabled():
        print(f"\n100 MB log ({offset} bytes, uploaded in {upload:.1f}s): "
              + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timings.items()))
    assert timings["log page"] < 0.5 and timings["tail 256 KiB"] < 0.5
