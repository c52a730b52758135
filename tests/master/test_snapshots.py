"""Jobs pinned to a Gentoo repository snapshot: the master learns the dates from a real mirror's
snapshots/ directory (a local HTTP server, Gentoo's layout), pins each job to the newest or to the
one its maintainer names, refuses a date it does not know, and tells the slave in the claim; the
job's page and the API show the pin."""

from __future__ import annotations

import io
import shutil

import pytest
import requests
from django.core.management import CommandError, call_command

from autotua.demo.httpserver import MirrorServer
from autotua_master.jobs.models import Job
from autotua_master.snapshots.models import Snapshot, UnknownSnapshot, normalise_date
from autotua_master.snapshots.refresh import listed_dates, refresh

pytestmark = pytest.mark.django_db(transaction=True)
bad = pytest.mark.bad_input


@pytest.fixture
def snapshot_mirror(tmp_path, snapshots):
    root = tmp_path / "mirror"
    shutil.copytree(snapshots[0].mirror, root)
    with MirrorServer(root) as m:
        m.dates = [s.date for s in snapshots]
        yield m


@pytest.fixture
def pinned_master(master, settings, snapshot_mirror):
    settings.AUTOTUA_SNAPSHOT_MIRROR = snapshot_mirror.url
    out = io.StringIO()
    call_command("refreshsnapshots", stdout=out)
    master.refreshed = out.getvalue()
    master.dates = snapshot_mirror.dates
    master.mirror = snapshot_mirror
    return master


def test_refresh_reads_the_listing_and_dates_gentoo_latest(pinned_master, snapshot_mirror):
    old, new = snapshot_mirror.dates
    assert list(Snapshot.objects.order_by("date").values_list("date", "listed", "latest")) == [
        (old, True, False), (new, True, True)]
    assert f"2 snapshots on {snapshot_mirror.url} ({old} to {new}), latest {new}" in pinned_master.refreshed
    # the listing is read once, gentoo-latest's signature is read, nothing big is fetched
    assert not [r for r in snapshot_mirror.requests if r[1].endswith(".tar.xz")]
    # a date gone from the mirror is no longer offered; one that came back is again
    for suffix in ("", ".gpgsig", ".md5sum"):
        (snapshot_mirror.root / f"snapshots/gentoo-{old}.tar.xz{suffix}").unlink()
    done = refresh(snapshot_mirror.url)
    assert (done.dates, done.gone, done.new) == ([new], [old], [])
    assert Snapshot.objects.newest().date == new and not Snapshot.objects.get(date=old).listed


def test_refresh_without_a_listing_uses_gentoo_latest(settings, snapshot_mirror):
    """A mirror whose snapshots/ has no index: gentoo-latest.tar.xz.gpgsig's date, checked to exist."""
    snapshot_mirror.faults["/snapshots/"] = 403
    done = refresh(snapshot_mirror.url)
    assert done.dates == [snapshot_mirror.dates[1]] and done.latest == snapshot_mirror.dates[1]
    assert any("no listing" in n for n in done.notes)


@bad("api", "refreshsnapshots against a mirror without snapshots",
     "CommandError: no snapshot found at ...; nothing changed")
def test_refresh_of_a_mirror_without_snapshots(tmp_path, settings):
    (tmp_path / "empty/snapshots").mkdir(parents=True)
    with MirrorServer(tmp_path / "empty") as m:
        settings.AUTOTUA_SNAPSHOT_MIRROR = m.url
        with pytest.raises(CommandError, match="no snapshot found at"):
            call_command("refreshsnapshots", stdout=io.StringIO(), stderr=io.StringIO())
    settings.AUTOTUA_SNAPSHOT_MIRROR = ""
    with pytest.raises(CommandError, match="no mirror: set AUTOTUA_SNAPSHOT_MIRROR"):
        call_command("refreshsnapshots")
    assert Snapshot.objects.count() == 0


def test_listing_parser():
    html = ('<a href="gentoo-20261117.tar.xz">x</a> <a href="gentoo-20261117.tar.xz.gpgsig">s</a>'
            '<a href="gentoo-20261118.tar.xz">no signature</a> <a href="gentoo-latest.tar.xz">l</a>'
            '<a href="/snapshots/gentoo-20261119.tar.xz">a</a><a href="/snapshots/gentoo-20261119.tar.xz.gpgsig">b</a>')
    assert listed_dates(html) == ["20261117", "20261119"]


def test_jobs_are_pinned_to_the_newest_or_the_named_snapshot(pinned_master):
    old, new = pinned_master.dates
    job = pinned_master.create_job("alice/toolchain-sanity")
    assert job["snapshot"] == {"date": new, "name": f"gentoo-{new}.tar.xz",
                               "url": f"{pinned_master.mirror.url}/snapshots/"}
    assert job["snapshot_asked"] == ""
    named = pinned_master.create_job("alice/toolchain-sanity", snapshot=f"{old[:4]}-{old[4:6]}-{old[6:]}")
    assert named["snapshot"]["date"] == old and named["snapshot_asked"] == old
    # the claim tells the slave which one, with the mirror as a hint
    claimed = pinned_master.slave().claim().json()
    assert claimed["job"]["id"] == job["id"]
    assert claimed["job"]["snapshot"] == job["snapshot"]
    # re-validating keeps a named snapshot, re-pins an unnamed one, and can name another
    alice = pinned_master.person("alice")
    r = alice.post(pinned_master.url + f"/api/v1/jobs/{named['id']}/revalidate", json={})
    assert r.status_code == 200 and r.json()["snapshot"]["date"] == old
    r = alice.post(pinned_master.url + f"/api/v1/jobs/{named['id']}/revalidate", json={"snapshot": ""})
    assert r.json()["snapshot"]["date"] == new and r.json()["snapshot_asked"] == ""
    # the job page shows the pin
    page = requests.get(pinned_master.url + f"/jobs/{named['id']}/").text
    assert f"gentoo-{new}.tar.xz" in page and "Gentoo repository" in page


@bad("api", "a job pinned to a snapshot date the master does not know", "400 unknown_snapshot; nothing stored")
@bad("api", "a job pinned to a snapshot date that is not a date", "400 invalid (field snapshot); nothing stored")
@bad("api", "a re-validation naming a snapshot no longer on the mirror", "400 unknown_snapshot; the job unchanged")
def test_unknown_snapshots_are_refused(pinned_master):
    alice = pinned_master.person("alice")
    before = Job.objects.count()
    r = alice.post(pinned_master.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity", "snapshot": "20000101"})
    assert r.status_code == 400 and r.json()["code"] == "unknown_snapshot" and r.json()["field"] == "snapshot"
    assert f"the mirror lists {pinned_master.dates[0]} to {pinned_master.dates[1]}" in r.json()["detail"]
    for junk in ("../../etc", "2026-13-01", "yesterday"):
        r = alice.post(pinned_master.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity", "snapshot": junk})
        assert r.status_code == 400 and r.json()["field"] == "snapshot", r.text
    assert Job.objects.count() == before
    job = pinned_master.create_job("alice/toolchain-sanity")
    Snapshot.objects.filter(date=pinned_master.dates[0]).update(listed=False)
    r = alice.post(pinned_master.url + f"/api/v1/jobs/{job['id']}/revalidate",
                   json={"snapshot": pinned_master.dates[0]})
    assert r.status_code == 400 and r.json()["code"] == "unknown_snapshot"
    assert "no longer on the mirror" in r.json()["detail"]
    assert Job.objects.get(pk=job["id"]).snapshot == pinned_master.dates[1]


def test_without_a_snapshot_mirror_jobs_carry_none(master):
    job = master.create_job("alice/toolchain-sanity")
    assert job["snapshot"] is None
    assert master.slave().claim().json()["job"]["snapshot"] is None


def test_a_sidepend_job_runs_against_the_waiters_snapshot(pinned_master):
    waiter = pinned_master.create_job("bob/integration", user="bob", snapshot=pinned_master.dates[0])
    providers = Job.objects.filter(owner=None)
    assert providers and all(p.snapshot == pinned_master.dates[0] for p in providers), waiter


def test_pin_rules(db):
    assert Snapshot.objects.pin("") == ""  # none known
    Snapshot.objects.create(date="20261101")
    Snapshot.objects.create(date="20261102")
    Snapshot.objects.create(date="20261103", listed=False)
    assert Snapshot.objects.pin("") == "20261102"
    assert Snapshot.objects.pin("2026-11-01") == "20261101"
    with pytest.raises(UnknownSnapshot, match="no longer on the mirror"):
        Snapshot.objects.pin("20261103")
    with pytest.raises(UnknownSnapshot, match="no snapshot 20261104: the mirror lists 20261101 to 20261102"):
        Snapshot.objects.pin("20261104")
    for junk in ("2026111", "2026-02-30", "../x"):
        with pytest.raises(ValueError):
            normalise_date(junk)
