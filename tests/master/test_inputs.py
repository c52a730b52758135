"""PUT /api/v1/runs/<run>/inputs: what a run was made of (the stage3, the revision, the Gentoo
repository, emerge --info), recorded once, idempotent as every write of the protocol, shown on the
job's page and in the API."""

from __future__ import annotations

import copy
import hashlib

import pytest
import requests

from autotua_master.jobs.models import RunInputs

pytestmark = pytest.mark.django_db(transaction=True)
bad = pytest.mark.bad_input

INFO = "Portage 3.0.83 (python 3.11.2-final-0, default/linux/amd64/autotua, gcc-14, glibc-2.36, 6.18 x86_64)\n" \
       "=================================================================\nACCEPT_KEYWORDS=\"amd64\"\n"


def body(claimed: dict, **over) -> dict:
    date = "20261130"
    b = {"stage3": {"name": "stage3-amd64-openrc-20261117T170000Z.tar.xz", "timestamp": "20261117T170000Z"},
         "revision": claimed["job"]["tree"]["revision"],
         "repository": {"source": "snapshot", "snapshot": date, "name": f"gentoo-{date}.tar.xz",
                        "timestamp_chk": "Mon, 30 Nov 2026 00:45:00 +0000"}}
    b.update(over)
    return b


@pytest.fixture
def claimed(master):
    master.create_job("alice/toolchain-sanity")
    slave = master.slave()
    c = slave.claim().json()
    c["slave"] = slave
    yield c
    slave.http.close()  # before the live server stops: its thread must not outlive the test's database


def put(claimed, data, slave=None):
    s = slave or claimed["slave"]
    return s.http.put(s.url + f"runs/{claimed['run']}/inputs", json=data)


def test_inputs_recorded_once_then_emerge_info_added(claimed, master):
    first = body(claimed)
    r = put(claimed, first)
    assert r.status_code == 201, r.text
    assert r.json() == {k: first[k] for k in ("stage3", "revision", "repository")}
    # the same again: the same answer, nothing written
    before = RunInputs.objects.get().updated
    again = put(claimed, first)
    assert (again.status_code, again.json()) == (200, r.json())
    assert RunInputs.objects.get().updated == before
    # emerge --info comes later, with the rest repeated: it is added once
    with_info = {**first, "emerge_info": INFO}
    added = put(claimed, with_info)
    assert added.status_code == 201, added.text
    assert added.json()["emerge_info"] == {"size": len(INFO), "sha256": hashlib.sha256(INFO.encode()).hexdigest()}
    assert (put(claimed, with_info).status_code, put(claimed, with_info).json()) == (200, added.json())
    assert (put(claimed, first).status_code, put(claimed, first).json()) == (200, r.json())  # a late repeat
    # the API and the job's page show them
    job = master.job(claimed["job"]["id"])
    inputs = job["runs"][0]["inputs"]
    assert inputs["stage3"] == first["stage3"] and inputs["repository"] == first["repository"]
    assert inputs["revision"] == first["revision"] and inputs["emerge_info"] == INFO
    page = requests.get(master.url + f"/jobs/{claimed['job']['id']}/").text
    assert "stage3-amd64-openrc-20261117T170000Z.tar.xz" in page and "gentoo-20261130.tar.xz" in page
    assert "Mon, 30 Nov 2026 00:45:00 +0000" in page and 'id="emerge-info"' in page and "ACCEPT_KEYWORDS" in page
    # the job had no snapshot pinned (this master knows none), and the page says the run used one
    assert "not the pinned snapshot" not in page


@bad("protocol", "run inputs repeated with another stage3, revision or repository", "409 conflict (field named)")
@bad("protocol", "run inputs repeated with another emerge_info", "409 conflict (field emerge_info)")
def test_different_inputs_are_a_conflict(claimed):
    first = {**body(claimed), "emerge_info": INFO}
    assert put(claimed, first).status_code == 201
    for field, value in [("stage3", {"name": "stage3-amd64-openrc-20261201T170000Z.tar.xz",
                                     "timestamp": "20261201T170000Z"}),
                         ("revision", "someone@example.org-20260101000000-0123456789abcdef"),
                         ("repository", {"source": "host", "path": "/var/db/repos/gentoo", "timestamp_chk": ""}),
                         ("emerge_info", INFO + "changed\n")]:
        r = put(claimed, {**first, field: value})
        assert r.status_code == 409 and r.json()["code"] == "conflict" and r.json()["field"] == field, r.text
    stored = RunInputs.objects.get()
    assert stored.stage3 == first["stage3"] and stored.emerge_info == INFO


BAD_BODIES = {
    "no stage3": (lambda b: b.pop("stage3"), "stage3"),
    "a stage3 name that is a path": (lambda b: b["stage3"].update(name="../../etc/passwd"), "stage3"),
    "a stage3 timestamp that is not one": (lambda b: b["stage3"].update(timestamp="yesterday"), "stage3"),
    "a revision with whitespace": (lambda b: b.update(revision="a b"), "revision"),
    "an unknown repository source": (lambda b: b["repository"].update(source="overlay"), "repository"),
    "a snapshot repository without its date": (lambda b: b["repository"].pop("snapshot"), "repository"),
    "a snapshot name of another date": (lambda b: b["repository"].update(name="gentoo-20200101.tar.xz"),
                                        "repository"),
    "a host repository with a relative path": (lambda b: b.update(repository={"source": "host", "path": "gentoo"}),
                                               "repository"),
    "an emerge_info over 256 KiB": (lambda b: b.update(emerge_info="x" * ((256 << 10) + 1)), "emerge_info"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
@bad("protocol", "run inputs with {case}", "400 invalid (field named); nothing recorded")
def test_bad_inputs_are_refused(claimed, case):
    data = copy.deepcopy(body(claimed))
    change, field = BAD_BODIES[case]
    change(data)
    r = put(claimed, data)
    assert r.status_code == 400 and r.json()["code"] == "invalid", r.text
    assert r.json().get("field", "").split(".")[0] == field, r.json()
    assert not RunInputs.objects.exists()


@bad("protocol", "run inputs for another slave's run", "404 not_found; nothing recorded")
@bad("protocol", "run inputs for a run that is over", "409 run_over")
def test_only_the_runs_slave_while_it_runs(claimed, master):
    other = master.slave("other")
    r = put(claimed, body(claimed), slave=other)
    other.http.close()
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert not RunInputs.objects.exists()
    claimed["slave"].run_through(claimed)
    r = put(claimed, body(claimed))
    assert r.status_code == 409 and r.json()["code"] == "run_over"
    assert not RunInputs.objects.exists()


def test_the_page_says_when_a_run_did_not_use_the_pinned_snapshot(claimed, master):
    from autotua_master.jobs.models import Job

    Job.objects.filter(pk=claimed["job"]["id"]).update(snapshot="20261129")
    host = body(claimed, repository={"source": "host", "path": "/var/db/repos/gentoo",
                                     "timestamp_chk": "Sun, 29 Nov 2026 12:00:00 +0000"})
    assert put(claimed, host).status_code == 201
    page = requests.get(master.url + f"/jobs/{claimed['job']['id']}/").text
    assert "the slave used the host&#x27;s repository (Sun, 29 Nov 2026 12:00:00 +0000), not the pinned snapshot " \
           "20261129" in page
