"""Jobs through the maintainers' API and the commands: validation, SIDEPEND holding, the master's own
SIDEPEND jobs, re-validation until frozen, cancel, and who may change what."""

from __future__ import annotations

import pytest
import requests

from autotua_master.jobs.models import Job, Provision
from autotua_master.tree.models import Maintainer

from .conftest import commit

pytestmark = pytest.mark.django_db(transaction=True)


def error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code, resp.json()
    return resp.json()


def test_sample_jobs_validate_and_wait(master):
    integration = master.create_job("bob/integration", "bob")
    assert integration["state"] == "waiting"
    assert [e["jobuild"] for e in integration["plan"]] == [
        "alice/toolchain-sanity-1.0", "bob/portconf-check-1.0", "bob/integration-1.0"]
    assert integration["warnings"] and "bob/no-such-jobuild" in integration["warnings"][0]["message"]
    (side,) = integration["sidepends"]
    assert side["atom"] == "<alice/hello-suite-2" and side["jobuild"] == "alice/hello-suite-1.1"
    assert side["state"] == "pending"
    provider = master.job(side["provider"])
    assert provider["root"] == "=alice/hello-suite-1.1" and provider["automatic"] and provider["owner"] is None
    assert provider["state"] == "queued" and provider["plan"][-1]["digest"] == side["digest"]
    # a second job waiting on the same SIDEPEND shares the provider
    again = master.create_job("bob/integration", "alice")
    assert again["sidepends"][0]["provider"] == side["provider"]
    assert Job.objects.filter(owner=None).count() == 1


def test_invalid_jobs_are_stored_with_every_error(master):
    job = master.create_job("bob/no-such-thing")
    assert job["state"] == "invalid" and job["errors"][0]["kind"] == "missing"
    job = master.create_job("alice/toolchain-sanity", arch="sparc")
    assert job["state"] == "invalid" and job["errors"][0]["kind"] == "arch"


@pytest.mark.bad_input('api', 'a job whose root is not an atom', '400 invalid, field root; no job')
@pytest.mark.bad_input('api', 'a job at a revision the tree lacks', '400 unknown_revision; no job')
@pytest.mark.bad_input('api', 'a job creation by a user who is not a maintainer', '403 permission_denied')
def test_bad_create_input_changes_nothing(master):
    alice = master.person("alice")
    url = master.url + "/api/v1/jobs/"
    body = error(alice.post(url, json={"root": "not an atom"}), 400, "invalid")
    assert body["field"] == "root" and "atom" in body["detail"]
    body = error(alice.post(url, json={"root": "alice/toolchain-sanity", "revision": "99"}), 400,
                 "unknown_revision")
    assert "no revision number 99" in body["detail"]
    error(alice.post(url, json={"root": "alice/toolchain-sanity", "revision": "nobody@x-123"}), 400,
          "unknown_revision")
    error(alice.post(url, json={"root": "alice/toolchain-sanity", "arch": "Not A Word"}), 400, "invalid")
    error(alice.post(url, json={}), 400, "invalid")
    error(alice.post(url, data=b"{", headers={"Content-Type": "application/json"}), 400, "parse_error")
    error(requests.post(url, json={"root": "alice/toolchain-sanity"}), 401, "not_authenticated")
    mallory = master.person("mallory")  # a user, but not a maintainer
    error(mallory.post(url, json={"root": "alice/toolchain-sanity"}), 403, "permission_denied")
    assert Job.objects.count() == 0


@pytest.mark.bad_input('api', "a maintainer cancelling another's job", '403 permission_denied')
def test_owner_and_staff_change_others_read(master):
    job = master.create_job("alice/toolchain-sanity", "alice")
    bob = master.person("bob")
    error(bob.post(master.url + f"/api/v1/jobs/{job['id']}/cancel", json={}), 403, "permission_denied")
    error(requests.post(master.url + f"/api/v1/jobs/{job['id']}/cancel", json={}), 401, "not_authenticated")
    assert bob.get(master.url + f"/api/v1/jobs/{job['id']}/").json()["state"] == "queued"
    assert requests.get(master.url + "/api/v1/jobs/?state=queued").json()["count"] == 1
    assert Job.objects.get().state == "queued"
    staff = master.person("root", staff=True)
    r = staff.post(master.url + f"/api/v1/jobs/{job['id']}/cancel", json={"reason": "spring cleaning"})
    assert r.json()["state"] == "cancelled" and r.json()["reason"] == "cancelled by root: spring cleaning"
    error(staff.post(master.url + f"/api/v1/jobs/{job['id']}/cancel", json={}), 409, "final")


def test_untrusted_key_makes_the_job_invalid(master, keys):
    Maintainer.objects.filter(name="alice").update(fingerprint=keys["mallory"])
    job = master.create_job("alice/toolchain-sanity", "bob")
    assert job["state"] == "invalid"
    assert job["errors"][0]["kind"] == "untrusted-key"


@pytest.fixture
def own_branch(master_settings, sample, tmp_path):
    """A copy of the sample branch the test may commit to."""
    import shutil

    dest = tmp_path / "jobtage"
    shutil.copytree(sample.branch, dest, symlinks=True)
    master_settings.AUTOTUA_TREE = dest
    return dest


def test_revalidate_until_frozen(master, own_branch, sample, reader):
    job = master.create_job("alice/toolchain-sanity")
    alice = master.person("alice")
    url = master.url + f"/api/v1/jobs/{job['id']}/revalidate"
    # a new revision that changes the jobuild: re-validating pins it and takes its new digest
    path = own_branch / "alice/toolchain-sanity/toolchain-sanity-1.0.jobuild"
    path.write_text(path.read_text() + "\n# changed\n")
    from autotua.maintainer import sign_paths
    from autotua.signature import Signer

    sign_paths([path], Signer(sample.fingerprints["alice"], str(sample.gnupghome)), log=lambda _m: None)
    commit(own_branch, "change toolchain-sanity")
    error(alice.post(url, json={"revision": "7"}), 400, "unknown_revision")
    assert Job.objects.get().revision.revno == 1
    r = alice.post(url, json={})
    assert r.status_code == 200, r.text
    assert r.json()["revno"] == 2 and r.json()["state"] == "queued"
    assert r.json()["plan"][0]["digest"] != job["plan"][0]["digest"]
    error(master.person("bob").post(url, json={}), 403, "permission_denied")
    # once a slave accepted it, it is frozen
    assert master.slave().claim().json()["job"]["id"] == job["id"]
    body = error(alice.post(url, json={}), 409, "frozen")
    assert "frozen" in body["detail"]
    assert Job.objects.get().revision.revno == 2


def test_createjob_command(master_settings, maintainers, capsys):
    from django.core.management import call_command

    call_command("createjob", "bob/needs-failing", "--owner", "bob")
    out = capsys.readouterr().out
    assert "bob/needs-failing at r1: waiting" in out
    assert Provision.objects.get().jobuild == "bob/fail-on-purpose-1.0"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no revision number 5"):
        call_command("createjob", "bob/needs-failing", "--revision", "5")
    assert Job.objects.count() == 2
