"""Who sees and does what: anonymous, the owner (a maintainer), another maintainer, a volunteer
(no key) and staff, on every page with an action."""

from __future__ import annotations

import pytest
from django.test import Client

from autotua_master.jobs.models import Job, JobState
from autotua_master.slaves.models import Slave, SlaveState

from .conftest import client_for

pytestmark = pytest.mark.django_db

READERS = [None, "alice", "bob", "vera", "root"]


@pytest.mark.parametrize("who", READERS)
def test_everyone_reads_every_page(scene, who):
    c = client_for(who)
    for url in ["/", "/jobs/", f"/jobs/{scene.toolchain.pk}/", f"/jobs/{scene.integration.pk}/", "/slaves/",
                f"/slaves/{scene.driver.slave.pk}/", "/browse/", "/browse/r1/",
                "/browse/jobuilds/alice/hello-suite-1.1/", f"/jobs/{scene.toolchain.pk}/graph.svg",
                f"/jobs/{scene.toolchain.pk}/runs/{scene.done_run}/jobuilds/0/log",
                f"/jobs/{scene.toolchain.pk}/runs/{scene.done_run}/jobuilds/0/log.txt"]:
        assert c.get(url).status_code == 200, (who, url)


@pytest.mark.parametrize(("who", "sees"), [(None, False), ("alice", False), ("bob", True), ("vera", False),
                                           ("root", True)])
def test_job_actions_only_for_owner_and_staff(scene, who, sees):
    page = client_for(who).get(f"/jobs/{scene.integration.pk}/").content.decode()
    assert ('id="cancel"' in page) is sees
    assert ('id="revalidate"' in page) is sees


@pytest.mark.parametrize(("who", "status"), [(None, 302), ("alice", 403), ("vera", 403), ("bob", 302),
                                             ("root", 302)])
def test_cancel(scene, who, status):
    r = client_for(who).post(f"/jobs/{scene.integration.pk}/cancel", {"reason": "enough"})
    assert r.status_code == status
    scene.integration.refresh_from_db()
    if who in ("bob", "root"):
        assert r["Location"] == f"/jobs/{scene.integration.pk}/"
        assert scene.integration.state == JobState.CANCELLED
        assert scene.integration.reason == f"cancelled by {who}: enough"
    else:
        assert scene.integration.state == JobState.QUEUED  # as it was (pipelined on its running SIDEPEND)
        if who is None:
            assert r["Location"].startswith("/login/?next=")


def test_cancel_is_post_only_and_final_jobs_say_so(scene):
    bob = client_for("bob")
    assert bob.get(f"/jobs/{scene.integration.pk}/cancel").status_code == 405
    bob.post(f"/jobs/{scene.integration.pk}/cancel", {})
    r = bob.post(f"/jobs/{scene.integration.pk}/cancel", {}, follow=True)
    assert "already cancelled" in r.content.decode()
    # a final job offers no cancel, a frozen one no re-validation
    page = client_for("alice").get(f"/jobs/{scene.toolchain.pk}/").content.decode()
    assert 'id="cancel"' not in page and 'id="revalidate"' not in page


def test_cancel_a_running_job_aborts_its_slave(scene):
    r = client_for("root").post(f"/jobs/{scene.provider.pk}/cancel", {"reason": "stop"})
    assert r.status_code == 302
    beat = scene.driver.client.post(f"/api/v1/runs/{scene.live_run}/heartbeat", {},
                                    content_type="application/json")
    assert beat.json() == {"action": "abort", "reason": "cancelled by root: stop"}


@pytest.mark.parametrize(("who", "status"), [(None, 302), ("alice", 403), ("vera", 403), ("bob", 302),
                                             ("root", 302)])
def test_revalidate(scene, who, status):
    before = scene.integration.validated
    r = client_for(who).post(f"/jobs/{scene.integration.pk}/revalidate", {"revision": ""})
    assert r.status_code == status
    scene.integration.refresh_from_db()
    assert (scene.integration.validated > before) is (who in ("bob", "root"))


def test_revalidate_a_frozen_job_is_refused_clearly(scene):
    r = client_for("root").post(f"/jobs/{scene.provider.pk}/revalidate", {}, follow=True)
    assert "queued by the master" in r.content.decode() or "frozen" in r.content.decode()
    r = client_for("alice").post(f"/jobs/{scene.toolchain.pk}/revalidate", {}, follow=True)
    assert "frozen" in r.content.decode()


@pytest.mark.parametrize(("who", "status"), [(None, 302), ("vera", 403), ("alice", 200), ("root", 200)])
def test_create_form_for_maintainers_and_staff(web, who, status):
    r = client_for(who).get("/jobs/new")
    assert r.status_code == status
    nav = client_for(who).get("/").content.decode()
    assert ('href="/jobs/new"' in nav) is (status == 200)
    r = client_for(who).post("/jobs/new", {"atom": "alice/toolchain-sanity", "arch": "amd64"})
    assert Job.objects.exists() is (status == 200)


@pytest.mark.parametrize(("who", "manages"), [(None, False), ("alice", False), ("vera", True), ("root", True)])
def test_slave_token_actions_only_for_owner_and_staff(scene, who, manages):
    slave = scene.driver.slave
    page = client_for(who).get(f"/slaves/{slave.pk}/").content.decode()
    assert ('id="token-actions"' in page) is manages
    r = client_for(who).post(f"/slaves/{slave.pk}/token")
    assert r.status_code == (200 if manages else 302 if who is None else 403)
    old_works = Slave.objects.authenticate(scene.driver.token) is not None
    assert old_works is not manages
    if manages:
        token = r.content.decode().split('<pre class="token" id="token">')[1].split("</pre>")[0]
        assert Slave.objects.authenticate(token).pk == slave.pk
    r = client_for(who).post(f"/slaves/{slave.pk}/revoke")
    slave.refresh_from_db()
    assert (slave.state == SlaveState.REVOKED) is manages


def test_volunteer_adds_a_slave_pending_staff_an_active_one(web):
    r = client_for("vera").post("/slaves/new", {"name": "vera-box", "arch": "amd64", "flavours": "openrc, systemd"})
    assert r.status_code == 200
    slave = Slave.objects.get(name="vera-box")
    assert slave.owner == web.vera and slave.state == SlaveState.PENDING
    assert r["Cache-Control"] == "no-store"
    assert slave.flavours == ["openrc", "systemd"]
    token = r.content.decode().split('id="token">')[1].split("</pre>")[0]
    assert Slave.objects.authenticate(token) == slave
    r = client_for("root").post("/slaves/new", {"name": "root-box", "arch": "arm64", "flavours": "musl"})
    assert Slave.objects.get(name="root-box").state == SlaveState.ACTIVE
    # errors next to the field; nothing made
    r = client_for("vera").post("/slaves/new", {"name": "vera-box", "arch": "AMD 64", "flavours": ""})
    page = r.content.decode()
    assert r.status_code == 400 and "already exists" in page and "a word like" in page
    assert Slave.objects.count() == 2
    assert Client().get("/slaves/new").status_code == 302


def test_adopt_a_registered_slave_with_its_token(web):
    r = Client().post("/api/v1/slaves/register", {"name": "self-made", "arch": "amd64", "flavours": ["openrc"]},
                      content_type="application/json")
    token = r.json()["token"]
    r = client_for("bob").post("/slaves/adopt", {"token": "s1_wrong"})
    assert r.status_code == 400 and "no slave has this token" in r.content.decode()
    r = client_for("vera").post("/slaves/adopt", {"token": token})
    assert r.status_code == 302
    assert Slave.objects.get(name="self-made").owner == web.vera
    r = client_for("bob").post("/slaves/adopt", {"token": token})
    assert r.status_code == 400 and "belongs to someone else" in r.content.decode()
    mine = client_for("vera").get("/slaves/").content.decode()
    assert 'id="mine"' in mine and "self-made" in mine.split('id="mine"')[1].split("</section>")[0]


def test_private_slave_facts_for_owner_and_staff(scene):
    Slave.objects.filter(pk=scene.driver.slave.pk).update(host={"hostname": "vera-secret-host"})
    assert "vera-secret-host" in client_for("vera").get(f"/slaves/{scene.driver.slave.pk}/").content.decode()
    assert "vera-secret-host" in client_for("root").get(f"/slaves/{scene.driver.slave.pk}/").content.decode()
    assert "vera-secret-host" not in client_for("bob").get(f"/slaves/{scene.driver.slave.pk}/").content.decode()
    assert "vera-secret-host" not in Client().get(f"/slaves/{scene.driver.slave.pk}/").content.decode()


def test_login_and_logout(web):
    c = Client()
    r = c.post("/login/", {"username": "alice", "password": "wrong"})
    assert "did not match" in r.content.decode()
    r = c.post("/login/", {"username": "alice", "password": "pw-alice", "next": "/jobs/new"})
    assert r.status_code == 302 and r["Location"] == "/jobs/new"
    assert "alice" in c.get("/").content.decode()
    assert c.post("/logout/").status_code == 302
    assert "Log in" in c.get("/").content.decode()


def test_demo_setup_gives_maintainers_a_login(master_settings, db, keys):
    from autotua_master.demo import setup_sample

    setup_sample({"alice": keys["alice"], "bob": keys["bob"]}, passwords={"alice": "demo-pw"}, out=lambda _s: None)
    c = Client()
    assert c.login(username="alice", password="demo-pw")
    assert c.get("/jobs/new").status_code == 200
    assert not Client().login(username="bob", password="demo-pw")


@pytest.mark.parametrize(("who", "sees"), [(None, False), ("alice", False), ("vera", True), ("root", True)])
def test_slave_trust_shown_to_owner_and_staff_only(scene, keys, who, sees):
    """Whom a volunteer's slave takes jobs from is theirs (and staff's) to see: its last claim said so."""
    slave = scene.driver.slave
    stranger = "F" * 40
    Slave.objects.filter(pk=slave.pk).update(trust=sorted([keys["alice"], stranger]))
    page = client_for(who).get(f"/slaves/{slave.pk}/").content.decode()
    assert ('id="trust"' in page) is sees
    assert (stranger in page) is sees and (keys["alice"] in page) is sees
    if sees:
        trust = page.split('id="trust">')[1].split("</dd>")[0]
        assert 'href="/browse/maintainers/alice/"' in trust and "no maintainer here" in trust
        Slave.objects.filter(pk=slave.pk).update(trust=None)
        page = client_for(who).get(f"/slaves/{slave.pk}/").content.decode()
        assert "every maintainer this master records" in page.split('id="trust">')[1].split("</dd>")[0]
