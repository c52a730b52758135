"""The slave protocol over a real (in-process) server: every endpoint, every bad input, each a clear
4xx with a message and a code, and nothing changed by it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests

from autotua_master.jobs.models import Attachment, Job, JobuildResult, LogFile, Run
from autotua_master.slaves.models import Slave, SlaveState
from tests.support.slaveclient import SlaveClient, sha256_digest_header

pytestmark = pytest.mark.django_db(transaction=True)


def error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10, body
    return body


@pytest.fixture
def queued(master):
    """alice/toolchain-sanity queued (no SIDEPEND), and a slave to claim it."""
    job = master.create_job("alice/toolchain-sanity")
    assert job["state"] == "queued"
    return job


def claim(slave: SlaveClient) -> dict:
    r = slave.claim()
    assert r.status_code == 200, r.text
    assert r.json()["run"], r.json()
    return r.json()


# -- registration and identity -----------------------------------------------------------------------
def test_register_pending_then_approved(master):
    body = {"name": "volunteer-1", "arch": "amd64", "flavours": ["openrc", "systemd"],
            "host": {"hostname": "box1", "cpus": 8}, "free_disk": 10**10, "version": "0.1.0"}
    r = requests.post(master.url + "/api/v1/slaves/register", json=body)
    assert r.status_code == 201, r.text
    reg = r.json()
    assert reg["state"] == "pending" and reg["token"].startswith(f"s{reg['id']}_")
    slave = Slave.objects.get(pk=reg["id"])
    assert slave.token_digest and reg["token"] not in slave.token_digest  # stored hashed
    client = SlaveClient(master.url, reg["token"])
    assert client.me().json()["state"] == "pending"
    error(client.claim(), 403, "permission_denied")
    assert Run.objects.count() == 0
    # the same name again is refused, and nothing is made
    error(requests.post(master.url + "/api/v1/slaves/register", json=body), 400, "invalid")
    assert Slave.objects.count() == 1
    slave.approve()
    assert client.me().json()["state"] == "active"
    assert client.claim().json() == {"run": None, "retry_after": 30}


@pytest.mark.parametrize("body", [
    {"name": "x"},
    {"name": "bad name!", "arch": "amd64", "flavours": ["openrc"]},
    {"name": "ok", "arch": "AMD 64", "flavours": ["openrc"]},
    {"name": "ok", "arch": "amd64", "flavours": []},
])
@pytest.mark.bad_input('api', 'a registration {body!r}', '400 invalid naming the field; no slave made')
def test_register_bad_input(master, body):
    body = error(requests.post(master.url + "/api/v1/slaves/register", json=body), 400, "invalid")
    assert body.get("field")
    assert Slave.objects.count() == 0


@pytest.mark.bad_input('api', 'malformed JSON on every endpoint', '400 parse_error; nothing changed')
@pytest.mark.bad_input('api', 'a JSON array where an object is expected', '400')
def test_malformed_json_everywhere(master, queued):
    slave = master.slave()
    run = claim(slave)["run"]
    before = (Run.objects.count(), JobuildResult.objects.count(), Slave.objects.count())
    for method, path in [("post", "slaves/register"), ("post", "claim"), ("put", f"runs/{run}/jobuilds/0/result"),
                         ("post", f"runs/{run}/finish")]:
        r = slave.http.request(method, master.url + "/api/v1/" + path, data=b"{not json",
                               headers={"Content-Type": "application/json"})
        error(r, 400, "parse_error")
        r = slave.http.request(method, master.url + "/api/v1/" + path, data=b"[1, 2]",
                               headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
    assert (Run.objects.count(), JobuildResult.objects.count(), Slave.objects.count()) == before
    assert Job.objects.get(pk=queued["id"]).state == "running"


@pytest.mark.bad_input('api', 'an unknown or garbled slave token', '401 authentication_failed')
@pytest.mark.bad_input('api', 'no token', '401 not_authenticated')
@pytest.mark.bad_input('api', "a maintainer's token on a slave endpoint", '403 permission_denied')
@pytest.mark.bad_input('api', "a slave token on a people's endpoint", '403 permission_denied')
def test_wrong_token_and_wrong_kind_of_credentials(master, queued):
    slave = master.slave()
    for header in ["Slave s999_nope", "Slave garbage", f"Slave {slave.token}x"]:
        r = requests.post(master.url + "/api/v1/claim", headers={"Authorization": header},
                          json={"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"]})
        error(r, 401, "authentication_failed")
    r = requests.post(master.url + "/api/v1/claim", json={"run": str(uuid.uuid4()), "arch": "amd64",
                                                          "flavours": ["openrc"]})
    error(r, 401, "not_authenticated")
    assert r.headers["WWW-Authenticate"] == "Slave"
    # a maintainer's token is never a slave's
    alice = master.person("alice")
    error(alice.post(master.url + "/api/v1/claim", json={"run": str(uuid.uuid4()), "arch": "amd64",
                                                         "flavours": ["openrc"]}), 403, "permission_denied")
    # ... nor a slave token a person's
    error(slave.http.post(master.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity"}), 403,
          "permission_denied")
    assert Run.objects.count() == 0 and Job.objects.count() == 1
    assert Job.objects.get(pk=queued["id"]).state == "queued"


@pytest.mark.bad_input('api', 'a claim by a revoked slave', '403 permission_denied; the job stays queued')
def test_revoked_slave(master, queued):
    slave = master.slave()
    Slave.objects.filter(name="box").update(state=SlaveState.REVOKED)
    error(slave.claim(), 403, "permission_denied")
    assert slave.me().json()["state"] == "revoked"
    assert Job.objects.get(pk=queued["id"]).state == "queued"


# -- claim ---------------------------------------------------------------------------------------------
def test_claim_payload_and_repeat(master, sample, queued):
    slave = master.slave()
    run_id = str(uuid.uuid4())
    r = slave.claim(run_id, free_disk=123456, host={"hostname": "box1"}, version="0.1.0")
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["run"] == run_id
    job = p["job"]
    assert job["id"] == queued["id"] and job["attempt"] == 1 and job["root"] == "alice/toolchain-sanity"
    assert job["stage3"] == "openrc" and job["arch"] == "amd64"
    assert job["tree"]["url"] == master.url + "/tree/"
    assert job["tree"]["revno"] == 1 and job["tree"]["revision"] == queued["revision"]
    assert [e["jobuild"] for e in job["plan"]] == ["alice/toolchain-sanity-1.0"]
    assert set(job["plan"][0]) == {"index", "jobuild", "path", "digest", "inherited", "src_uri", "portconf_uri",
                                   "parameters"}
    assert job["plan"][0]["parameters"] == {}
    assert job["maintainers"] == {"alice": sample.fingerprints["alice"]}
    assert job["mirrors"] == {"autotua-samples": [master.url + "/distfiles/"]}
    assert job["limits"] == {"phase_timeout": 3600, "log_chunk_bytes": 1 << 20, "attachment_bytes": 10 << 20}
    assert p["lease"]["seconds"] == 300 and p["lease"]["heartbeat_every"] == 60
    slave_row = Slave.objects.get(name="box")
    assert slave_row.free_disk == 123456 and slave_row.host == {"hostname": "box1"}
    assert slave.me().json()["current_run"] == run_id
    # the same claim again (answer lost): the same run, no second attempt
    again = slave.claim(run_id)
    assert again.json()["run"] == run_id and again.json()["job"]["id"] == job["id"]
    assert Run.objects.count() == 1 and Job.objects.get(pk=job["id"]).attempts == 1
    # nothing more to do
    other = master.slave("box2")
    r = other.claim()
    assert r.json() == {"run": None, "retry_after": 30} and r.headers["Retry-After"] == "30"
    # another slave naming the same run id is refused
    error(other.claim(run_id), 409, "conflict")


def test_claim_matches_arch_and_flavour(master, queued):
    assert master.slave("arm", arch="arm64").claim(arch="arm64").json()["run"] is None
    assert master.slave("sysd", flavours=("systemd",)).claim(flavours=["systemd"]).json()["run"] is None
    assert Job.objects.get(pk=queued["id"]).state == "queued"
    assert master.slave("box").claim().json()["job"]["id"] == queued["id"]


@pytest.mark.bad_input('api', 'a claim without a run, with a run that is not a UUID, or flavours as a string',
                       '400 invalid; nothing claimed')
def test_claim_bad_input(master, queued):
    slave = master.slave()
    for body in [{"arch": "amd64", "flavours": ["openrc"]}, {"run": "not-a-uuid", "arch": "amd64",
                                                              "flavours": ["openrc"]},
                 {"run": str(uuid.uuid4()), "arch": "amd64", "flavours": "openrc"}]:
        error(slave.http.post(slave.url + "claim", json=body), 400, "invalid")
    assert Run.objects.count() == 0 and Job.objects.get(pk=queued["id"]).state == "queued"


def test_new_claim_supersedes_the_old_run(master, queued):
    slave = master.slave()
    first = claim(slave)["run"]
    r = slave.claim()  # the slave restarted and lost its run: the old one is over, the job requeued
    assert r.json()["run"] and r.json()["job"]["attempt"] == 2
    old = Run.objects.get(uuid=first)
    assert old.end == "superseded"
    error(slave.heartbeat(first), 409, "run_over")


@pytest.mark.bad_input('protocol', 'a result replayed with other content', '409 conflict')
def test_the_deciding_result_ends_the_job_and_finishes_the_run(master):
    """The last result (or a failed one) decides the job: it ends, the run is finished, and the answer
    says so, so a slave that dies in its teardown or before its finish (the fault matrix's
    slave:teardown, slave:finish, slave:last-result) costs nothing, and the job never runs twice. A
    finish that comes anyway (an older slave) is answered with the job's state, whatever it says."""
    passing = master.create_job("alice/hello-suite")  # toolchain-sanity, then hello-suite
    failing = master.create_job("bob/fail-on-purpose")
    slave = master.slave()
    run = claim(slave)["run"]
    first = slave.result(run, 0)
    assert first.status_code == 200 and first.json() == {"action": "continue"}
    error(slave.result(run, 0, results={"other": "content"}), 409, "conflict")
    last = slave.result(run, 1)
    assert last.status_code == 200, last.text
    decided = {"action": "continue", "finished": True, "job": {"id": passing["id"], "state": "passed"}}
    assert last.json() == decided
    assert slave.result(run, 1).json() == decided  # its answer lost: the same again
    job = master.job(passing["id"])
    assert job["state"] == "passed" and len(job["runs"]) == 1 and job["runs"][0]["end"] == "finished", job
    error(slave.heartbeat(run), 409, "run_over")
    for status in ("passed", "error"):  # an older slave's finish (after a teardown that failed, say)
        r = slave.finish(run, status)
        assert r.status_code == 200 and r.json() == {"job": {"id": passing["id"], "state": "passed"}}, r.text
    again = claim(slave)  # a new run: nothing of the old one is left to supersede
    assert again["job"]["id"] == failing["id"]
    assert master.job(passing["id"])["runs"][0]["end"] == "finished"
    phases = [{"name": "pkg_setup", "status": "passed"}, {"name": "src_test", "status": "failed", "exit_code": 1}]
    r = slave.result(again["run"], 0, "failed", phases=phases)
    assert r.json() == {"action": "continue", "finished": True, "job": {"id": failing["id"], "state": "failed"}}
    job = master.job(failing["id"])
    assert job["state"] == "failed" and job["attempts"] == 1, job
    assert job["reason"] == "bob/fail-on-purpose-1.0 failed in src_test"
    Run.objects.filter(uuid=again["run"]).update(lease_expires="2000-01-01T00:00:00Z")
    assert master.slave("box2").claim().json()["run"] is None  # nothing to sweep, nothing queued
    assert master.job(failing["id"])["state"] == "failed"


def test_a_run_lost_with_results_missing_is_tried_again(master):
    job = master.create_job("alice/hello-suite")
    slave = master.slave()
    run = claim(slave)["run"]
    assert slave.result(run, 0).status_code == 200
    again = claim(slave)
    assert again["job"]["id"] == job["id"] and again["job"]["attempt"] == 2


# -- heartbeat, lease ------------------------------------------------------------------------------
def test_heartbeat_extends_and_cancel_aborts(master, queued):
    slave = master.slave()
    run = claim(slave)["run"]
    before = Run.objects.get(uuid=run).lease_expires
    seen = Run.objects.get(uuid=run).slave.last_seen
    Slave.objects.filter(runs__uuid=run).update(last_seen=seen - timedelta(minutes=5))  # long ago
    r = slave.heartbeat(run)
    assert r.status_code == 200 and r.json()["action"] == "continue"
    assert Run.objects.get(uuid=run).lease_expires > before
    assert Run.objects.get(uuid=run).slave.last_seen >= seen  # a heartbeat is a sign of life
    alice = master.person("alice")
    r = alice.post(master.url + f"/api/v1/jobs/{queued['id']}/cancel", json={"reason": "no longer needed"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = slave.heartbeat(run)
    assert r.json() == {"action": "abort", "reason": "cancelled by alice: no longer needed"}
    # results still recorded, but answered abort; finishing reports the cancel
    assert slave.result(run, 0).json()["action"] == "abort"
    assert slave.finish(run, "cancelled", "aborted on the master's request").json() == {
        "job": {"id": queued["id"], "state": "cancelled"}}


@pytest.mark.bad_input('protocol', 'writes of a run whose lease expired',
                       '409 run_over (action abort); nothing recorded')
def test_stale_lease(master, queued, settings):
    slave = master.slave()
    run = claim(slave)["run"]
    Run.objects.filter(uuid=run).update(lease_expires="2000-01-01T00:00:00Z")
    other = master.slave("box2")
    again = claim(other)  # the sweep on claim requeued it, and box2 got it
    assert again["job"]["id"] == queued["id"] and again["job"]["attempt"] == 2
    body = error(slave.heartbeat(run), 409, "run_over")
    assert body["action"] == "abort"
    error(slave.log(run, 0, 0, b"late"), 409, "run_over")
    error(slave.result(run, 0), 409, "run_over")
    error(slave.finish(run), 409, "run_over")
    assert LogFile.objects.count() == 0 and JobuildResult.objects.count() == 0
    assert Job.objects.get(pk=queued["id"]).state == "running"


@pytest.mark.bad_input('protocol', "calls on another slave's run", '404 not_found, as a missing run')
def test_other_slaves_run_is_not_found(master, queued):
    owner = master.slave()
    run = claim(owner)["run"]
    thief = master.slave("thief")
    for resp in [thief.heartbeat(run), thief.log(run, 0, 0, b"x"), thief.result(run, 0), thief.finish(run),
                 thief.attach(run, 0, "a.txt", b"x"), thief.heartbeat(str(uuid.uuid4())),
                 thief.heartbeat("not-a-uuid")]:
        error(resp, 404, "not_found")
    assert LogFile.objects.count() == 0 and Attachment.objects.count() == 0
    assert Job.objects.get(pk=queued["id"]).state == "running"
    assert Run.objects.get(uuid=run).ended is None


# -- log --------------------------------------------------------------------------------------------
@pytest.mark.bad_input('protocol', 'a log chunk past the end of the log', '416 offset_gap with the offset')
@pytest.mark.bad_input('protocol', 'a log chunk that rewrites received bytes', '409 conflict')
@pytest.mark.bad_input('protocol', 'a Content-Range whose length differs from the body', '400 invalid')
@pytest.mark.bad_input('protocol', 'a Content-Range in lines', '400 invalid')
@pytest.mark.bad_input('protocol', 'a log for a jobuild not in the plan', '400 invalid')
@pytest.mark.bad_input('protocol', 'a log chunk over the size limit', '413 too_large')
def test_log_chunks(master, queued, settings):
    slave = master.slave()
    run = claim(slave)["run"]
    r = slave.log(run, 0, 0, b"hello ")
    assert r.status_code == 202 and r.json() == {"offset": 6} and r.headers["Range"] == "0-5"
    assert slave.log(run, 0, 0, b"hello ").json() == {"offset": 6}  # the same chunk twice: once
    # a chunk resent from before the end (the slave lost an answer): the overlap must match, the rest is added
    assert slave.log(run, 0, 3, b"lo world\n").json() == {"offset": 12}
    path = LogFile.objects.get().path
    assert path.read_bytes() == b"hello world\n"
    body = error(slave.log(run, 0, 20, b"gap"), 416, "offset_gap")
    assert body["offset"] == 12
    error(slave.log(run, 0, 0, b"HELLO "), 409, "conflict")
    error(slave.log(run, 0, 12, b"abc", content_range="bytes 12-20"), 400, "invalid")
    error(slave.log(run, 0, 12, b"abc", content_range="lines 1-2"), 400, "invalid")
    error(slave.log(run, 5, 0, b"abc"), 400, "invalid")  # no jobuild 5 in the plan
    settings.AUTOTUA_LOG_CHUNK_BYTES = 10
    error(slave.log(run, 0, 12, b"x" * 11), 413, "too_large")
    assert path.read_bytes() == b"hello world\n" and LogFile.objects.get().size == 12
    # people read it back, with Range
    r = requests.get(master.url + f"/api/v1/jobs/{queued['id']}/runs/{run}/jobuilds/0/log",
                     headers={"Range": "bytes=6-"})
    assert r.status_code == 206 and r.content == b"world\n"


# -- attachments ---------------------------------------------------------------------------------------
@pytest.mark.bad_input('protocol', 'an attachment replayed with other bytes', '409 conflict')
@pytest.mark.bad_input('protocol', 'an attachment whose body does not match its Content-Digest', '400 invalid')
@pytest.mark.bad_input('protocol', 'an attachment without a Content-Digest', '400 invalid')
@pytest.mark.bad_input('protocol', "attachment names '..', '-rf', '.hidden', 'a/b'", '400 invalid / 404')
@pytest.mark.bad_input('protocol', 'an attachment over the size limit', '413 too_large; no file left')
def test_attachments(master, queued, settings):
    slave = master.slave()
    run = claim(slave)["run"]
    data = b"PASS one\nPASS two\n"
    r = slave.attach(run, 0, "report.txt", data)
    assert r.status_code == 201, r.text
    desc = r.json()
    assert desc["name"] == "report.txt" and desc["size"] == len(data) and len(desc["sha256"]) == 64
    again = slave.attach(run, 0, "report.txt", data)
    assert again.status_code == 200 and again.json() == desc
    error(slave.attach(run, 0, "report.txt", b"other"), 409, "conflict")
    error(slave.attach(run, 0, "x.txt", data, digest=sha256_digest_header(b"not it")), 400, "invalid")
    error(slave.attach(run, 0, "x.txt", data, digest=""), 400, "invalid")
    error(slave.attach(run, 0, "%2E%2E", data), 400, "invalid")
    error(slave.attach(run, 0, "-rf", data), 400, "invalid")
    error(slave.attach(run, 0, "a%2Fb", data), 404, "not_found")
    error(slave.attach(run, 0, ".hidden", data), 400, "invalid")
    settings.AUTOTUA_ATTACHMENT_BYTES = 8
    error(slave.attach(run, 0, "big.txt", b"x" * 9), 413, "too_large")
    assert list(Attachment.objects.values_list("name", flat=True)) == ["report.txt"]
    att = Attachment.objects.get()
    assert att.path.read_bytes() == data
    leftovers = [p.name for p in att.path.parent.iterdir()]
    assert leftovers == ["report.txt"]
    r = requests.get(master.url + f"/api/v1/jobs/{queued['id']}/runs/{run}/jobuilds/0/attachments/report.txt")
    assert r.content == data


# -- result and finish -----------------------------------------------------------------------------
@pytest.mark.bad_input('protocol', 'a result whose log_size differs from the log received',
                       '409 conflict with the offset')
@pytest.mark.bad_input('protocol', 'a result naming an attachment not uploaded', '400 invalid')
@pytest.mark.bad_input('protocol', 'a result naming an attachment with another digest', '409 conflict')
@pytest.mark.bad_input('protocol', 'a result status that does not exist', '400 invalid')
@pytest.mark.bad_input('protocol', 'a result for jobuild 1 before jobuild 0', '400 invalid')
@pytest.mark.bad_input('protocol', 'finish passed with no passed result', '400 invalid')
def test_result_and_finish(master, queued):
    slave = master.slave()
    run = claim(slave)["run"]
    slave.log(run, 0, 0, b"x" * 100)
    data = b"report"
    slave.attach(run, 0, "r.txt", data)
    sha = slave.attach(run, 0, "r.txt", data).json()["sha256"]
    result = {"status": "passed", "exit_code": 0, "started": "2026-11-23T16:01:02.120Z",
              "finished": "2026-11-23T16:01:09.874Z",
              "phases": [{"name": "src_test", "status": "passed", "exit_code": 0,
                          "started": "2026-11-23T16:01:02.130Z", "finished": "2026-11-23T16:01:02.150Z"}],
              "results": {"bash.version": "5.2"},
              "attachments": [{"name": "r.txt", "label": "a report", "size": 6, "sha256": sha}], "log_size": 100}
    # faults first: nothing recorded by any of them
    body = error(slave.result(run, 0, **{**result, "log_size": 99}), 409, "conflict")
    assert body["offset"] == 100
    error(slave.result(run, 0, **{**result, "attachments": [{**result["attachments"][0], "name": "no.txt"}]}),
          400, "invalid")
    error(slave.result(run, 0, **{**result, "attachments": [{**result["attachments"][0], "sha256": "0" * 64}]}),
          409, "conflict")
    error(slave.result(run, 0, **{**result, "status": "great"}), 400, "invalid")
    error(slave.result(run, 1, **result), 400, "invalid")
    error(slave.finish(run, "passed"), 400, "invalid")  # no result yet
    error(slave.finish(run, "splendid"), 400, "invalid")
    assert JobuildResult.objects.count() == 0 and Job.objects.get(pk=queued["id"]).state == "running"
    r = slave.result(run, 0, **result)  # its only jobuild: the result decides the job
    decided = {"action": "continue", "finished": True, "job": {"id": queued["id"], "state": "passed"}}
    assert r.status_code == 200 and r.json() == decided
    assert slave.result(run, 0, **result).json() == decided  # repeat: same answer
    error(slave.result(run, 0, **{**result, "results": {"bash.version": "4"}}), 409, "run_over")  # it is over
    error(slave.log(run, 0, 100, b"more"), 409, "run_over")
    assert JobuildResult.objects.count() == 1
    assert Attachment.objects.get().label == "a report"
    r = slave.finish(run, "passed")  # an older slave finishes anyway: the job's state
    assert r.status_code == 200 and r.json() == {"job": {"id": queued["id"], "state": "passed"}}
    assert slave.finish(run, "passed").json() == r.json()
    job = master.job(queued["id"])
    assert job["state"] == "passed" and job["runs"][0]["results"][0]["results"] == {"bash.version": "5.2"}
    error(slave.heartbeat(run), 409, "run_over")


def test_failed_jobuild_fails_the_job(master):
    job = master.create_job("bob/fail-on-purpose")
    slave = master.slave()
    run = claim(slave)["run"]
    phases = [{"name": "src_test", "status": "failed", "exit_code": 1}]
    assert slave.result(run, 0, "failed", phases=phases).json() == {
        "action": "continue", "finished": True, "job": {"id": job["id"], "state": "failed"}}
    r = slave.finish(run, "failed", "bob/fail-on-purpose-1.0 failed in src_test")
    assert r.json() == {"job": {"id": job["id"], "state": "failed"}}
    assert master.job(job["id"])["reason"] == "bob/fail-on-purpose-1.0 failed in src_test"


def test_a_failed_results_reason_ends_the_jobs(master):
    """The slave knows what the phase does not (a limit of the container it hit): the job says it."""
    job = master.create_job("bob/fail-on-purpose")
    slave = master.slave()
    run = claim(slave)["run"]
    phases = [{"name": "src_test", "status": "failed", "exit_code": 137}]
    why = "more than 200 processes (the slave's pids_limit)"
    assert slave.result(run, 0, "failed", phases=phases, reason=why).json()["finished"] is True
    assert master.job(job["id"])["reason"] == f"bob/fail-on-purpose-1.0 failed in src_test: {why}"
    assert slave.result(run, 0, "failed", phases=phases, reason=why).json()["job"]["state"] == "failed"  # a repeat


@pytest.mark.bad_input('protocol', 'a finish that contradicts the recorded one', '409 conflict')
def test_error_finish_requeues_then_errors(master, settings):
    job = master.create_job("alice/toolchain-sanity")
    slave = master.slave()
    for attempt in (1, 2, 3):
        claimed = claim(slave)
        assert claimed["job"]["attempt"] == attempt
        r = slave.finish(claimed["run"], "error", "stage3: DIGESTS does not match")
        want = "queued" if attempt < 3 else "error"
        assert r.json() == {"job": {"id": job["id"], "state": want}}
        assert slave.finish(claimed["run"], "error", "stage3: DIGESTS does not match").json() == r.json()
        error(slave.finish(claimed["run"], "passed"), 409, "conflict")
    assert "DIGESTS does not match" in master.job(job["id"])["reason"]
    assert slave.claim().json()["run"] is None


def test_openapi_schema(master):
    r = requests.get(master.url + "/api/v1/schema/", headers={"Accept": "application/json"})
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ["/api/v1/claim", "/api/v1/slaves/register", "/api/v1/slaves/me", "/api/v1/runs/{run}/heartbeat",
              "/api/v1/runs/{run}/jobuilds/{index}/log", "/api/v1/runs/{run}/jobuilds/{index}/result",
              "/api/v1/runs/{run}/jobuilds/{index}/attachments/{name}", "/api/v1/runs/{run}/finish",
              "/api/v1/jobs/", "/api/v1/jobs/{id}/cancel/", "/api/v1/jobs/{id}/revalidate/"]:
        assert p in paths, sorted(paths)
