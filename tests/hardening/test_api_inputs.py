"""Bad API input the protocol tests (tests/master/) leave out: oversized, deep, non-UTF-8 and wrongly typed
bodies, absurd headers and numbers, replayed and out-of-order writes. Each gets its clear 4xx in the
API's error shape, and nothing on the master changes: every row of every table and every file of
the runs' directory is compared before and after (tests/hardening/state.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import requests

from tests.hardening.state import diff, snapshot
from tests.support.slaveclient import sha256_digest_header

pytestmark = pytest.mark.django_db(transaction=True)
bad = pytest.mark.bad_input


def refused(resp, status: int, code: str, field: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers["Content-Type"] == "application/json", resp.headers
    body = resp.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10, body
    if field:
        assert body.get("field") == field, body
    return body


class Scene:
    """A queued two-jobuild job (alice/hello-suite: toolchain-sanity, then hello-suite) claimed by
    box1, with some log, an attachment and jobuild 0's result in; alice's token; box2 active."""

    def __init__(self, master):
        self.master = master
        self.url = master.url + "/api/v1/"
        self.job = master.create_job("alice/hello-suite")
        assert self.job["state"] == "queued" and len(self.job["plan"]) == 2
        self.slave = master.slave("box1")
        claimed = self.slave.claim().json()
        self.run = claimed["run"]
        self.claim_body = {"run": self.run, "arch": "amd64", "flavours": ["openrc"]}
        assert self.slave.log(self.run, 0, 0, b"jobuild 0\n").status_code == 202
        assert self.slave.attach(self.run, 0, "r.txt", b"report").status_code == 201
        self.result0 = {"status": "passed", "exit_code": 0, "log_size": 10,
                        "attachments": [{"name": "r.txt", "size": 6, "sha256": hashlib.sha256(b"report").hexdigest()}]}
        r = self.slave.result(self.run, 0, **self.result0)
        assert r.status_code == 200, r.text
        assert self.slave.log(self.run, 1, 0, b"jobuild 1\n").status_code == 202
        self.alice = master.person("alice")

    def post_raw(self, path: str, data: bytes, content_type: str = "application/json", session=None):
        return (session or self.slave.http).post(self.url + path, data=data, headers={"Content-Type": content_type})


@pytest.fixture
def scene(master):
    return Scene(master)


@pytest.fixture
def unchanged():
    """Call with a block's result after taking ``unchanged.before = snapshot()``: asserts no change."""
    class Checker:
        def __enter__(self):
            self.before = snapshot()
            return self

        def __exit__(self, *exc):
            if exc[0] is None:
                changes = diff(self.before, snapshot())
                assert not changes, changes
    return Checker


# -- bodies ---------------------------------------------------------------------------------------
@bad("api", "a JSON body nested 100,000 arrays deep", "400 parse_error: nested more than 32 levels deep")
@bad("api", "a JSON body nested 50,000 objects deep", "400 parse_error: nested more than 32 levels deep")
@bad("api", "a JSON body nested 40 levels deep (within Python's limit)", "400 parse_error: nested more than 32 levels")
def test_deeply_nested_json(scene, unchanged):
    bodies = ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
              json.dumps({**scene.claim_body, "host": {"x": None}}).replace("null", "[" * 40 + "]" * 40)]
    with unchanged():
        for body in bodies:
            for path in ("claim", f"runs/{scene.run}/finish", "slaves/register"):
                refused(scene.post_raw(path, body.encode()), 400, "parse_error")
            refused(scene.post_raw("jobs/", body.encode(), session=scene.alice), 400, "parse_error")


@bad("api", "a JSON body larger than 2.5 MB", "413 too_large with the limit")
def test_oversized_json_body(scene, unchanged):
    body = json.dumps({**scene.claim_body, "version": "x" * 3_000_000}).encode()
    with unchanged():
        for path in ("claim", "slaves/register", f"runs/{scene.run}/jobuilds/1/result"):
            method = "put" if path.endswith("result") else "post"
            r = scene.slave.http.request(method, scene.url + path, data=body,
                                         headers={"Content-Type": "application/json"})
            assert refused(r, 413, "too_large")["limit"] == 2_621_440


@bad("api", "a body that is not UTF-8", "400 parse_error")
@bad("api", "a JSON string holding NUL (U+0000)", "400 parse_error: strings may not hold U+0000")
@bad("api", "a NUL or a lone surrogate in a UTF-16 body", "400 parse_error")
@bad("api", "a JSON key holding NUL", "400 parse_error: strings may not hold U+0000")
@bad("api", "a JSON string holding a lone surrogate (\\ud800)", "400 parse_error: strings may not hold U+D800")
@bad("api", "NaN and Infinity in JSON", "400 parse_error")
@bad("api", "a JSON body that is null, a number or a string", "400 invalid: the body must be a JSON object")
def test_undecodable_and_unstorable_json(scene, unchanged):
    cases = [
        (b'{"run": "\xff\xfe", "arch": "amd64"}', "parse_error"),
        (json.dumps({**scene.claim_body, "version": "a\x00b"}).encode(), "parse_error"),
        (json.dumps({**scene.claim_body, "host": {"a\x00": 1}}).encode(), "parse_error"),
        (json.dumps({**scene.claim_body, "version": "\ud800"}).encode(), "parse_error"),
        (json.dumps({**scene.claim_body, "free_disk": float("nan")}).encode(), "parse_error"),
        (json.dumps({**scene.claim_body, "free_disk": float("inf")}).encode(), "parse_error"),
        (b"null", "invalid"), (b"42", "invalid"), (b'"claim"', "invalid"),
    ]
    with unchanged():
        for body, code in cases:
            refused(scene.post_raw("claim", body), 400, code)
            refused(scene.post_raw("slaves/register", body), 400, code)
        # the same in UTF-16, where the parser's quick look at the bytes cannot see a \u escape
        for body in (json.dumps({**scene.claim_body, "version": "a\x00b"}), json.dumps({**scene.claim_body,
                                                                                        "version": "\ud800"})):
            refused(scene.post_raw("claim", body.encode("utf-16"), "application/json; charset=utf-16"), 400,
                    "parse_error")


@bad("api", "a JSON body sent as text/plain", "415 unsupported_media_type")
@bad("api", "a form-encoded body where JSON is expected", "415 unsupported_media_type")
@bad("api", "a multipart body where JSON is expected", "415 unsupported_media_type")
def test_wrong_content_types(scene, unchanged):
    body = json.dumps(scene.claim_body).encode()
    with unchanged():
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            refused(scene.post_raw("claim", body, ctype), 415, "unsupported_media_type")
            refused(scene.post_raw(f"runs/{scene.run}/finish", body, ctype), 415, "unsupported_media_type")
            refused(scene.post_raw("jobs/", body, ctype, session=scene.alice), 415, "unsupported_media_type")


@bad("api", "a number past 64 bits (free_disk: 10**30)", "400 invalid, field free_disk")
@bad("api", "an exit code past 32 bits", "400 invalid, field exit_code")
@bad("api", "a log_size past 64 bits", "400 invalid, field log_size")
@bad("api", "a negative size", "400 invalid")
def test_numbers_out_of_range(scene, unchanged):
    with unchanged():
        refused(scene.slave.claim(scene.run, free_disk=10**30), 400, "invalid", "free_disk")
        refused(scene.slave.claim(scene.run, free_disk=-1), 400, "invalid", "free_disk")
        refused(scene.slave.result(scene.run, 1, exit_code=2**31), 400, "invalid", "exit_code")
        refused(scene.slave.result(scene.run, 1, log_size=2**63), 400, "invalid", "log_size")
        phases = [{"name": "src_test", "status": "passed", "exit_code": -(2**31) - 1}]
        refused(scene.slave.result(scene.run, 1, phases=phases), 400, "invalid", "phases.0.exit_code")
        att = [{"name": "r.txt", "size": -1, "sha256": "0" * 64}]
        refused(scene.slave.result(scene.run, 1, attachments=att), 400, "invalid", "attachments.0.size")


@bad("api", "host facts that are not an object", "400 invalid, field host")
@bad("api", "host facts nested in lists and objects", "400 invalid, field host")
@bad("api", "more than 32 host facts", "400 invalid, field host")
@bad("api", "a host fact of 100,000 characters", "400 invalid, field host")
@bad("api", "a host fact whose name is not a word", "400 invalid, field host")
def test_host_facts(scene, unchanged):
    hosts = ["box1", ["a"], {"a": [1, 2]}, {"a": {"b": 1}}, {f"f{i}": i for i in range(33)}, {"kernel": "x" * 100_000},
             {"<script>": 1}, {"": 1}, {"n": 2**64}]
    with unchanged():
        for host in hosts:
            refused(scene.slave.claim(scene.run, host=host), 400, "invalid", "host")
            r = requests.post(scene.url + "slaves/register", json={"name": "new", "arch": "amd64",
                                                                   "flavours": ["openrc"], "host": host})
            refused(r, 400, "invalid", "host")


@bad("api", "wrong JSON types in a result (phases an object, results' values lists, status a number)",
     "400 invalid naming the field")
@bad("api", "a result with 1001 values, or a 201-character key", "400 invalid, field results")
@bad("api", "a result naming the same attachment twice", "400 invalid, field attachments")
def test_result_wrong_types(scene, unchanged):
    bodies = [({"phases": {"name": "x"}}, "phases"), ({"results": {"a": ["b"]}}, "results.a"),
              ({"status": 1}, "status"), ({"log_size": "ten"}, "log_size"), ({"started": "yesterday"}, "started"),
              ({"phases": [{"name": "../x", "status": "passed"}]}, "phases.0.name"),
              ({"results": {f"k{i}": "v" for i in range(1001)}}, "results"),
              ({"results": {"k" * 201: "v"}}, "results"),
              ({"attachments": [{"name": "a", "size": 1, "sha256": "0" * 64}] * 2}, "attachments")]
    with unchanged():
        for body, field in bodies:
            refused(scene.slave.result(scene.run, 1, **{"log_size": 10, **body}), 400, "invalid", field)


# -- query strings and URLs -------------------------------------------------------------------------
@bad("api", "paging with a limit of 0, -1, 'abc', '' or 10**30, or a negative offset",
     "400 invalid, field limit/offset")
@bad("api", "a job list filtered by a state that does not exist", "400 invalid, field state")
@bad("api", "a job list filtered by a root, arch or owner holding NUL", "400 invalid, the field named")
@bad("api", "a filter or a paging parameter given twice (group=x&group=: the last hid the bad first)",
     "400 invalid, the field named")
def test_paging_and_filters(scene):
    url = scene.url + "jobs/"
    for query, field in [("limit=0", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
                         ("limit=1000000000000000000000000000000", "limit"), ("offset=-5", "offset"),
                         ("offset=1e3", "offset"), ("limit=\u0663", "limit"), ("state=bogus", "state"),
                         ("state=", "state"), ("root=alice%00", "root"), ("arch=%00", "arch"),
                         ("owner=al%00ice", "owner"), ("group=x&group=", "group"), ("state=queued&state=passed",
                                                                                       "state"),
                         ("limit=1&limit=2", "limit"), ("offset=0&offset=1", "offset")]:
        refused(requests.get(f"{url}?{query}"), 400, "invalid", field)
    assert requests.get(f"{url}?limit=1&offset=99999").json()["results"] == []


@bad("api", "an id of 19 or more digits in a URL", "404 not_found (the URL does not exist)")
@bad("api", "a run that is not a UUID in a people's log or attachment URL", "404 not_found")
def test_absurd_ids_in_urls(scene):
    big = "9" * 25
    job, run = scene.job["id"], scene.run
    for path in [f"jobs/{big}/", f"jobs/{big}/cancel", f"jobs/{job}/runs/{run}/jobuilds/{big}/log",
                 f"jobs/{job}/runs/not-a-uuid/jobuilds/0/log", f"jobs/{job}/runs/0/jobuilds/0/attachments/r.txt",
                 f"jobs/{big}/runs/{run}/jobuilds/0/attachments/r.txt"]:
        refused(scene.alice.get(scene.url + path), 404, "not_found")
    refused(scene.slave.log(run, big, 0, b"x"), 404, "not_found")
    for page in (f"/jobs/{big}/", f"/slaves/{big}/", f"/browse/r{big}/", f"/jobs/{job}/runs/{run}/jobuilds/{big}/log",
                 f"/jobs/{big}/runs/{run}/jobuilds/0/attachments/r.txt",
                 f"/browse/jobuilds/alice/hello-suite-2.0/?r={big}",
                 "/browse/jobuilds/alice/hello-suite-2.0/?r=\u00b2"):
        assert requests.get(scene.master.url + page).status_code == 404, page


# -- headers ----------------------------------------------------------------------------------------
@bad("protocol", "a Content-Range with 19 or more digits", "400 invalid, field Content-Range")
@bad("protocol", "a Content-Range whose last byte is before its first", "400 invalid, field Content-Range")
@bad("protocol", "a Content-Range of 'bytes */*' or with no numbers", "400 invalid, field Content-Range")
@bad("protocol", "a Content-Range spanning more than the chunk limit", "413 too_large")
@bad("protocol", "no Content-Range at all", "400 invalid, field Content-Range")
def test_absurd_content_ranges(scene, unchanged):
    run = scene.run
    with unchanged():
        for header in ("bytes 99999999999999999999-99999999999999999999", "bytes " + "9" * 5000 + "-1",
                       "bytes 10-5", "bytes */*", "bytes -", "bytes 0-", "bytes=0-0, 1-1"):
            refused(scene.slave.log(run, 1, 10, b"x", content_range=header), 400, "invalid", "Content-Range")
        refused(scene.slave.log(run, 1, 10, b"x", content_range="bytes 10-2000000"), 413, "too_large")
        r = scene.slave.http.patch(scene.url + f"runs/{run}/jobuilds/1/log", data=b"x",
                                   headers={"Content-Type": "application/octet-stream"})
        refused(r, 400, "invalid", "Content-Range")


@bad("protocol", "a Content-Digest with another algorithm (sha-512 only)", "400 invalid, field Content-Digest")
@bad("protocol", "a Content-Digest that is not base64", "400 invalid, field Content-Digest")
@bad("protocol", "a Content-Digest of 31 bytes", "400 invalid, field Content-Digest")
def test_bad_content_digests(scene, unchanged):
    data = b"attachment"
    with unchanged():
        for digest in ("sha-512=:" + "A" * 86 + "==:", "sha-256=:not base64!:", "sha-256=:" + "A" * 40 + "=:",
                       "sha-256=" + sha256_digest_header(data).split("=", 1)[1].strip(":")):
            refused(scene.slave.attach(scene.run, 1, "a.txt", data, digest=digest), 400, "invalid", "Content-Digest")


@bad("api", "a Range past the end of a log (people's API)", "416 range_not_satisfiable with the size")
def test_range_past_the_end_is_an_error_in_the_api_shape(scene):
    url = scene.url + f"jobs/{scene.job['id']}/runs/{scene.run}/jobuilds/0/log"
    body = refused(scene.alice.get(url, headers={"Range": "bytes=500-"}), 416, "range_not_satisfiable")
    assert body["size"] == 10
    # a Range we cannot read (digits past 18) is ignored, as RFC 9110 allows: the whole log
    r = scene.alice.get(url, headers={"Range": "bytes=" + "9" * 30 + "-"})
    assert r.status_code == 200 and r.content == b"jobuild 0\n"


# -- replayed and out-of-order writes ---------------------------------------------------------------
@bad("protocol", "an attachment uploaded after its jobuild's result", "409 conflict")
def test_attachment_after_its_result(scene, unchanged):
    with unchanged():
        refused(scene.slave.attach(scene.run, 0, "late.txt", b"late"), 409, "conflict")
    # the upload the result named, repeated, is still answered as the first time
    assert scene.slave.attach(scene.run, 0, "r.txt", b"report").status_code == 200


@bad("protocol", "a result after a failed jobuild's result", "409 run_over: the failed result finished the run")
@bad("protocol", "a result for a jobuild past the end of the plan", "400 invalid, field index")
def test_results_out_of_order(master, unchanged):
    job = master.create_job("alice/hello-suite")
    slave = master.slave("box1")
    run = slave.claim().json()["run"]
    with unchanged():
        refused(slave.result(run, 2), 400, "invalid", "index")
    assert slave.result(run, 0, "failed").json() == {"action": "continue", "finished": True,
                                                     "job": {"id": job["id"], "state": "failed"}}
    with unchanged():
        assert "is over" in refused(slave.result(run, 1), 409, "run_over")["detail"]


@bad("protocol", "a log chunk, an attachment, a result or a heartbeat after the run finished", "409 run_over")
@bad("protocol", "a claim repeating a run that has finished", "409 run_over")
@bad("protocol", "a finish saying failed after the results passed the job", "409 conflict")
def test_writes_after_finish(scene, unchanged):
    s, run = scene.slave, scene.run
    decided = s.result(run, 1, log_size=10).json()  # the last result: it decides the job
    assert decided == {"action": "continue", "finished": True, "job": {"id": scene.job["id"], "state": "passed"}}
    assert s.finish(run, "passed").json()["job"]["state"] == "passed"
    with unchanged():
        for resp in (s.log(run, 1, 10, b"more"), s.log(run, 0, 0, b"jobuild 0\n"), s.attach(run, 1, "x.txt", b"x"),
                     s.result(run, 0, log_size=10), s.heartbeat(run), s.claim(run)):
            assert refused(resp, 409, "run_over")["action"] == "abort"
        refused(s.finish(run, "failed", "late"), 409, "conflict")
        assert s.result(run, 1, log_size=10).json() == decided  # the deciding result again: the same answer
    assert s.finish(run, "passed").json()["job"]["state"] == "passed"  # the same finish: the same answer


@bad("protocol", "a log chunk replayed over bytes that differ", "409 conflict with the log's offset")
@bad("protocol", "a log chunk for a jobuild whose result is in", "409 conflict")
def test_log_replays(scene, unchanged):
    with unchanged():
        assert refused(scene.slave.log(scene.run, 1, 0, b"JOBUILD 1\n"), 409, "conflict")["offset"] == 10
        refused(scene.slave.log(scene.run, 0, 10, b"more"), 409, "conflict")
    assert scene.slave.log(scene.run, 1, 0, b"jobuild 1\n").json() == {"offset": 10}  # an identical replay


@bad("api", "cancelling a job twice", "409 final")
@bad("api", "re-validating a job a slave accepted", "409 frozen")
def test_people_replays(scene, unchanged):
    url = scene.url + f"jobs/{scene.job['id']}/"
    with unchanged():
        refused(scene.alice.post(url + "revalidate", json={}), 409, "frozen")
    assert scene.alice.post(url + "cancel", json={"reason": "once"}).status_code == 200
    with unchanged():
        refused(scene.alice.post(url + "cancel", json={"reason": "twice"}), 409, "final")


@bad("protocol", "a claim reusing another slave's run id", "409 conflict")
@bad("protocol", "a claim with a run id that is not a UUID", "400 invalid, field run")
def test_claim_ids(scene, unchanged):
    other = scene.master.slave("box2")
    with unchanged():
        refused(other.claim(scene.run), 409, "conflict")
        refused(other.claim("0b6f7c7e"), 400, "invalid", "run")
        refused(other.claim(str(uuid.uuid4()).upper() + "x"), 400, "invalid", "run")


# -- whom a slave trusts ------------------------------------------------------------------------------
@bad("protocol", "a claim's trust that is not a list of full fingerprints (a string, a number, 39 hex digits, "
                 "non-hex, a list in the list, an object, a trailing space)", "400 invalid, field trust")
@bad("protocol", "a claim trusting more than 1,000 maintainers", "400 invalid, field trust")
def test_claim_trust(scene, unchanged):
    other = scene.master.slave("box2")
    fpr = "1979717D92818A0A7411FDA91245A35B0D1B42A4"
    with unchanged():
        for trust in (fpr, [1234], [fpr[:-1]], ["G" * 40], [[fpr]], {"alice": fpr}, [fpr + " "], 7,
                      [f"{i:040X}" for i in range(1001)]):
            body = refused(other.claim(trust=trust), 400, "invalid")
            assert body["field"].startswith("trust"), body


# -- validating holds no state ------------------------------------------------------------------------------
def test_validating_a_body_does_not_depend_on_what_was_validated_before():
    """The slaves' bodies are validated with fields built once per thread (api/serializers.py, Shape):
    any sequence of good and bad bodies, in many threads, gets what a serializer of its own gives."""
    import random
    import threading

    from rest_framework import serializers

    from autotua_master.api import serializers as s

    def plain(cls):
        return type(f"Plain{cls.__name__}", (cls,), {"fields": serializers.Serializer.fields})

    good_result = {"status": "passed", "exit_code": 0, "log_size": 10,
                   "phases": [{"name": "src_test", "status": "passed", "started": "2026-11-23T16:01:02Z"}],
                   "results": {"a": "1"}, "attachments": [{"name": "r.txt", "size": 6, "sha256": "0" * 64}]}
    bodies = [
        (s.ResultSerializer, good_result),
        (s.ResultSerializer, {**good_result, "phases": [{"name": "BAD NAME", "status": "passed"}]}),
        (s.ResultSerializer, {**good_result, "phases": [{"name": "x", "status": "great"}] * 3}),
        (s.ResultSerializer, {**good_result, "attachments": [good_result["attachments"][0]] * 2}),
        (s.ResultSerializer, {"status": "failed", "log_size": -1}),
        (s.ClaimSerializer, {"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"], "trust": None}),
        (s.ClaimSerializer, {"run": "x", "arch": "AMD 64", "flavours": [], "host": {"k" * 80: 1}}),
        (s.ClaimSerializer, {"run": str(uuid.uuid4()), "arch": "amd64", "flavours": ["openrc"],
                             "trust": ["a" * 40, "A" * 40]}),
        (s.FinishSerializer, {"status": "error", "reason": "disk full"}),
        (s.FinishSerializer, {"status": "splendid"}),
    ]

    def outcome(cls, body):
        ser = cls(data=json.loads(json.dumps(body)))
        return ("ok", dict(ser.validated_data)) if ser.is_valid() else ("bad", ser.errors)

    expected = [outcome(plain(cls), body) for cls, body in bodies]
    failures: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            i = rng.randrange(len(bodies))
            got = outcome(*bodies[i])
            if repr(got) != repr(expected[i]):
                failures.append(f"body {i}: {got} != {expected[i]}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:3]
    assert expected[7][1]["trust"] == ["A" * 40]  # normalised: upper-case, once each, sorted
