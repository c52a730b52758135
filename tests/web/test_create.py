"""Creating, re-validating: the form's suggestions and choices, errors next to the fields, and the
validation report on the job page."""

from __future__ import annotations

import shutil

import pytest

from autotua_master.jobs.models import Job, JobState

from .conftest import client_for

pytestmark = pytest.mark.django_db


def test_form_suggests_atoms_revisions_arches_flavours(web):
    page = client_for("alice").get("/jobs/new").content.decode()
    atoms = page.split('<datalist id="atoms">')[1].split("</datalist>")[0]
    for atom in ("alice/hello-suite", "=alice/hello-suite-1.1", "bob/integration", "=bob/fail-on-purpose-1.0"):
        assert f'<option value="{atom}">' in atoms
    assert '<option value="" selected>the tip (r1)</option>' in page
    assert 'value="amd64"' in page  # the default arch
    assert '<option value="systemd">' in page.split('<datalist id="flavours">')[1]


def test_create_shows_the_validated_job(web):
    r = client_for("alice").post("/jobs/new", {"atom": "alice/hello-suite", "arch": "amd64", "stage3": "",
                                               "revision": ""}, follow=True)
    job = Job.objects.get(owner=web.alice)
    assert r.redirect_chain[-1][0] == f"/jobs/{job.pk}/"
    page = r.content.decode()
    assert f"job #{job.pk} created: queued" in page
    assert job.root == "alice/hello-suite" and job.revision.revno == 1 and job.stage3 == "openrc"
    assert [e["jobuild"] for e in job.plan] == ["alice/toolchain-sanity-1.0", "alice/hello-suite-2.0"]


@pytest.mark.bad_input('web', 'a malformed atom in the job form',
                       'the form again, the error next to the field; no job')
def test_bad_input_is_shown_next_to_the_field(web):
    alice = client_for("alice")
    r = alice.post("/jobs/new", {"atom": "not an atom", "arch": "amd64"})
    page = r.content.decode()
    assert r.status_code == 400
    atom_field = page.split('for="id_atom"')[1].split("</div>")[0]
    assert "field-errors" in atom_field
    r = alice.post("/jobs/new", {"atom": "alice/hello-suite", "arch": "amd64", "revision": "99"})
    assert r.status_code == 400 and "Select a valid choice" in r.content.decode().split('for="id_revision"')[1]
    r = alice.post("/jobs/new", {"atom": "alice/hello-suite", "arch": "Not a word"})
    assert "a word like" in r.content.decode().split('for="id_arch"')[1]
    assert not Job.objects.exists()


def test_a_job_that_does_not_validate_is_stored_with_its_errors(web):
    r = client_for("bob").post("/jobs/new", {"atom": "alice/toolchain-sanity", "arch": "sparc"}, follow=True)
    job = Job.objects.get()
    assert job.state == JobState.INVALID
    report = r.content.decode().split('id="validation"')[1].split("</section>")[0]
    assert "1 error" in report and "sparc" in report and "arch" in report


def test_revalidate_against_a_chosen_revision(web, master_settings, sample, tmp_path):
    from autotua.maintainer import sign_paths
    from autotua.signature import Signer
    from tests.master.conftest import commit

    branch = tmp_path / "jobtage"
    shutil.copytree(sample.branch, branch, symlinks=True)
    master_settings.AUTOTUA_TREE = branch
    bob = client_for("bob")
    bob.post("/jobs/new", {"atom": "alice/toolchain-sanity", "arch": "amd64"})
    job = Job.objects.get()
    path = branch / "alice/toolchain-sanity/toolchain-sanity-1.0.jobuild"
    path.write_text(path.read_text() + "\n# changed\n")
    sign_paths([path], Signer(sample.fingerprints["alice"], str(sample.gnupghome)), log=lambda _m: None)
    commit(branch, "change toolchain-sanity")
    page = bob.get(f"/jobs/{job.pk}/").content.decode()
    form = page.split('id="revalidate"')[1].split("</form>")[0]
    assert "the tip (r2)" in form and 'value="1"' in form
    r = bob.post(f"/jobs/{job.pk}/revalidate", {"revision": ""}, follow=True)
    job.refresh_from_db()
    assert job.revision.revno == 2 and "re-validated against r2: queued" in r.content.decode()
    bob.post(f"/jobs/{job.pk}/revalidate", {"revision": "1"})
    job.refresh_from_db()
    assert job.revision.revno == 1
    # the form offers r2 now too, and the tree browser shows both revisions with their digests
    page = bob.get("/browse/jobuilds/alice/toolchain-sanity-1.0/").content.decode()
    assert page.count('class="digest-block') == 2


@pytest.mark.bad_input('web', 'a snapshot in the job form that the master does not know',
                       'the form again, "Select a valid choice" next to the field; no job')
def test_the_form_offers_the_known_snapshots(web):
    from autotua_master.snapshots.models import Snapshot

    for date in ("20261120", "20261121"):
        Snapshot.objects.create(date=date)
    alice = client_for("alice")
    page = alice.get("/jobs/new").content.decode()
    field = page.split('for="id_snapshot"')[1].split("</div>")[0]
    assert "the newest (20261121)" in page and '<option value="20261120">gentoo-20261120.tar.xz</option>' in page
    assert "Gentoo repository" in field
    r = alice.post("/jobs/new", {"atom": "alice/hello-suite", "arch": "amd64", "snapshot": "20261120"}, follow=True)
    job = Job.objects.get(owner=web.alice)
    assert (job.snapshot, job.snapshot_asked) == ("20261120", "20261120")
    assert "snapshot of 2026-11-20" in r.content.decode()
    r = alice.post("/jobs/new", {"atom": "alice/hello-suite", "arch": "amd64", "snapshot": "20200101"})
    assert r.status_code == 400 and "Select a valid choice" in r.content.decode().split('for="id_snapshot"')[1]
    assert Job.objects.count() == 1
