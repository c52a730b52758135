"""API fuzzing: schemathesis against the master's own OpenAPI schema, served by gunicorn over HTTP.

Every operation of ``/api/v1/schema/`` gets a bounded, deterministic number of generated requests
(hypothesis derandomised: the same examples on every run, never luck), in two modes:

* positive: requests the schema allows, with random path parameters and with real ones (a job, a
  run the slave holds, jobuild 0), authenticated as the operation expects (a slave token, a
  maintainer's token, nobody for registration and reads);
* negative: requests the schema forbids (wrong types, missing fields, bad headers...).

Each answer is checked: no 5xx, a status the schema declares, the declared content type, a body
that matches the declared schema, and in negative mode a 4xx. Failures are collected over all
operations (the fuzzing does not stop at the first) and reported together; the figures go to
docs/security.md.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import requests

from tests.hardening.docs import write_section
from tests.support.master import LiveMaster
from tests.support.slaveclient import sha256_digest_header

pytestmark = pytest.mark.slow

#: generated requests per operation, mode and kind of path parameters (hypothesis may find fewer
#: distinct ones for a small operation)
EXAMPLES = 15


@dataclass
class Target:
    master: LiveMaster
    slave: str
    alice: str
    job: int
    run: str


#: (database, mode) -> (operations, requests, statuses, failures), for docs/security.md
FIGURES: dict = {}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request, tmp_path_factory, sample, keys, master_cache):
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").createdb(f"fuzz_{uuid.uuid4().hex[:8]}")
    m = LiveMaster(tmp_path_factory.mktemp("fuzz"), sample.branch, cache=master_cache, workers=2, threads=4,
                   database_url=url, MIRRORS='{"autotua-samples": ["/distfiles/"]}')
    m.database = request.param
    m.migrate()
    alice = m.add_maintainer("alice", keys["alice"])
    m.add_maintainer("bob", keys["bob"])
    slave = m.add_slave("box1")
    m.start()
    try:
        people = m.person_session(alice)
        job = people.post(m.url + "/api/v1/jobs/", json={"root": "alice/toolchain-sanity"}).json()["id"]
        people.post(m.url + "/api/v1/jobs/", json={"root": "bob/integration"})
        s = m.slave_session(slave)
        run = str(uuid.uuid4())
        assert s.post(m.url + "/api/v1/claim", json={"run": run, "arch": "amd64", "flavours": ["openrc"]}).ok
        s.patch(m.url + f"/api/v1/runs/{run}/jobuilds/0/log", data=b"hello\n",
                headers={"Content-Range": "bytes 0-5", "Content-Type": "application/octet-stream"})
        s.put(m.url + f"/api/v1/runs/{run}/jobuilds/0/attachments/r.txt", data=b"report",
              headers={"Content-Digest": sha256_digest_header(b"report"),
                       "Content-Type": "application/octet-stream"})
        yield Target(m, slave, alice, job, run)
    finally:
        m.stop()


def _checks(negative: bool):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance]
    return [*checks, negative_data_rejection] if negative else checks


def _auth(t: Target, path: str) -> dict[str, str]:
    if path.startswith("/api/v1/runs/") or path in ("/api/v1/claim", "/api/v1/slaves/me"):
        return {"Authorization": f"Slave {t.slave}"}
    if path.startswith("/api/v1/jobs"):
        return {"Authorization": f"Token {t.alice}"}
    return {}


def fuzz(t: Target, mode: str) -> tuple[Counter, Counter, list[str]]:
    """Run every operation; (examples per operation, statuses seen, failures)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    raw = requests.get(t.master.url + "/api/v1/schema/?format=json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    negative = mode == "negative"
    checks = _checks(negative)
    examples: Counter = Counter()
    statuses: Counter = Counter()
    failures: list[str] = []
    http = requests.Session()
    real = {"id": t.job, "run": t.run, "index": 0, "name": "r.txt"}

    def runner(strategy, label: str, headers: dict):
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            examples[label] += 1
            try:
                response = case.call(base_url=t.master.url, session=http, headers=headers, timeout=30)
            except requests.RequestException as e:
                failures.append(f"{label}: no answer: {e}")
                return
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except FailureGroup as e:
                kinds = "; ".join(sorted({f"{f.title}: {f.message.splitlines()[0] if f.message else ''}"
                                          for f in e.exceptions}))
                failures.append(f"{label} ({mode}): {kinds}\n    {response.request.method} {response.request.url}"
                                f"\n    -> {response.status_code} {response.text[:300]}")
        return run

    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"
        names = {p.name for p in op.path_parameters}
        variants = [None, {k: v for k, v in real.items() if k in names}] if names else [None]
        for fixed in variants:
            strategy = op.as_strategy(generation_mode=GenerationMode(mode), path_parameters=fixed or None)
            try:
                runner(strategy, label, _auth(t, op.path))()
            except Unsatisfiable:
                # nothing of this operation can be made invalid (no body, the path parameters fixed)
                assert negative, label
                examples[label] += 0
    return examples, statuses, failures


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzz_the_api(target, mode, capsys):
    examples, statuses, failures = fuzz(target, mode)
    total = sum(examples.values())
    with capsys.disabled():
        print(f"\nfuzzing ({target.master.database}, {mode}): {len(examples)} operations, {total} requests, statuses "
              f"{dict(sorted(statuses.items()))}, {len(failures)} failures")
    FIGURES[(target.master.database, mode)] = (len(examples), total, dict(sorted(statuses.items())), len(failures))
    if len(FIGURES) == 4:
        # the statuses depend on timing (leases, the order answers arrive in), so only the figures that
        # the generation alone decides go to the document: it does not change from one run to the next
        lines = [f"{EXAMPLES} generated examples at most per operation, mode and kind of path parameters "
                 "(random, real).", "", "| database | mode | operations | requests | failures |",
                 "|---|---|---|---|---|"]
        for (db, m), (ops, n, _st, f) in sorted(FIGURES.items(), key=lambda kv: (kv[0][0] != "sqlite", kv[0][1])):
            lines.append(f"| {db} | {m} | {ops} | {n} | {f} |")
        write_section("fuzzing", "\n".join(lines) + "\n", fail_if_changed=False)
    assert len(examples) >= 15, sorted(examples)  # every operation of the schema was exercised
    assert not failures, "\n".join(failures[:30]) + f"\n({len(failures)} failures in all)"
