"""The web UI as a real site runs it (and the demo): gunicorn, DEBUG off, PostgreSQL, the CSS and JS
served by the master itself, a login through the form with its CSRF token, a slave reporting over HTTP."""

from __future__ import annotations

import re
import uuid

import pytest
import requests

pytestmark = pytest.mark.slow


def test_pages_under_gunicorn_on_postgresql(live_master, postgres, sample, keys):
    m = live_master(sample.branch, database_url=postgres.createdb(f"w_{uuid.uuid4().hex[:10]}"))
    token = m.add_maintainer("alice", keys["alice"], password="pw-alice")
    m.add_maintainer("bob", keys["bob"])
    m.add_user("vera", "pw-vera")
    slave = m.add_slave("box1", owner="vera")
    m.start()
    css = requests.get(m.url + "/static/web/style.css")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert requests.get(m.url + "/static/web/log.js").status_code == 200
    assert requests.get(m.url + "/static/admin/css/base.css").status_code == 200  # the admin's too

    s = requests.Session()
    form = s.get(m.url + "/login/").text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
    r = s.post(m.url + "/login/", data={"username": "alice", "password": "pw-alice", "csrfmiddlewaretoken": csrf,
                                        "next": "/jobs/new"}, headers={"Referer": m.url + "/login/"})
    assert r.url == m.url + "/jobs/new" and "bob/integration" in r.text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', r.text)[1]
    r = s.post(m.url + "/jobs/new", data={"atom": "bob/integration", "arch": "amd64", "csrfmiddlewaretoken": csrf},
               headers={"Referer": m.url + "/jobs/new"})
    assert "created: waiting" in r.text and "<svg" in r.text, re.sub(r"\s+", " ", r.text)[-3000:]

    api = requests.Session()
    api.headers["Authorization"] = f"Slave {slave}"
    claimed = api.post(m.url + "/api/v1/claim", json={"run": str(uuid.uuid4()), "arch": "amd64",
                                                      "flavours": ["openrc"]}).json()
    run, job_id = claimed["run"], claimed["job"]["id"]
    api.patch(m.url + f"/api/v1/runs/{run}/jobuilds/0/log", data=b"hello\n",
              headers={"Content-Range": "bytes 0-5", "Content-Type": "application/octet-stream"})
    for url in ["/", "/jobs/", f"/jobs/{job_id}/", "/slaves/", "/browse/", "/browse/r1/",
                "/browse/jobuilds/alice/hello-suite-1.1/", f"/jobs/{job_id}/runs/{run}/jobuilds/0/log"]:
        r = requests.get(m.url + url)
        assert r.status_code == 200, (url, r.text[:500])
    slaves = requests.get(m.url + "/slaves/").text
    assert f"#{job_id} =alice/hello-suite-1.1" in slaves and "vera" in slaves
    tail = requests.get(m.url + f"/jobs/{job_id}/runs/{run}/jobuilds/0/log.txt", headers={"Range": "bytes=-3"})
    assert tail.status_code == 206 and tail.content == b"lo\n" and tail.headers["X-Log-Complete"] == "0"
    assert token
