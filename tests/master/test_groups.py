"""Groups on a real master: an arch-testing group from a bug's package list (read against a real
snapshot the master fetched and verified itself), matrices with a combination filter, every fault of a
request at once with nothing stored, job parameters (hostile ones too) through the API, SIDEPENDs that
name values, second opinions on another slave, the report, cancel and rerun, flagged slaves."""

from __future__ import annotations

import io

import pytest
import requests
from django.core.management import call_command

from autotua.demo.httpserver import MirrorServer
from autotua_master.groups.models import Group
from autotua_master.jobs.models import Job, Provision
from autotua_master.snapshots import repository
from autotua_master.tree.models import Maintainer

pytestmark = pytest.mark.django_db(transaction=True)
bad = pytest.mark.bad_input
LIST = "=app-misc/hello-1.0 amd64\n=dev-libs/libgreet-1.0 ^\n"


@pytest.fixture
def snapshot_mirror(snapshots):
    with MirrorServer(snapshots[0].mirror) as m:
        yield m


def trust_gentoo(sample) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username="gentoo")
    Maintainer.objects.create(user=user, name="gentoo", fingerprint=sample.fingerprints["gentoo"])


@pytest.fixture
def archtest(master, settings, snapshot_mirror, snapshot_key, snapshots, sample):
    """The master reads snapshots (mirror and key set) and trusts the sample tree's gentoo."""
    settings.AUTOTUA_SNAPSHOT_MIRROR = snapshot_mirror.url
    settings.AUTOTUA_SNAPSHOT_KEY = str(snapshot_key.key_file)
    settings.AUTOTUA_SNAPSHOT_KEY_FINGERPRINT = snapshot_key.fingerprint
    out = io.StringIO()
    call_command("refreshsnapshots", stdout=out)
    master.refreshed = out.getvalue()
    master.date = snapshots[1].date
    trust_gentoo(sample)
    yield master
    repository.close_all()


def post(master, path, body, user="alice"):
    return master.person(user).post(master.url + "/api/v1/" + path, json=body)


def test_refresh_fetches_the_newest_snapshot_for_the_master(archtest, snapshot_mirror):
    assert f"gentoo-{archtest.date} verified and unpacked" in archtest.refreshed
    assert ("GET", f"/snapshots/gentoo-{archtest.date}.tar.xz", None) in snapshot_mirror.requests
    n = len(snapshot_mirror.requests)
    repo = repository.repository_for(archtest.date)  # opened once per process: no fetch again
    assert repository.repository_for(archtest.date) is repo and len(snapshot_mirror.requests) == n
    assert repo.match("=app-misc/hello-1.0")


def test_an_archtest_group_from_a_package_list(archtest):
    r = post(archtest, "groups/archtest", {"packages": LIST, "bug": 123456, "seed": 5,
                                           "flavours": ["openrc", "systemd"]})
    assert r.status_code == 201, r.text
    g = r.json()
    assert (g["kind"], g["bug"], g["seed"], g["snapshot"], g["root"]) == (
        "archtest", 123456, 5, archtest.date, "gentoo/arch-test")
    assert g["title"] == "bug 123456: stabilisation of =app-misc/hello-1.0, =dev-libs/libgreet-1.0"
    labels = [row["label"] for row in g["rows"]]
    # hello: the defaults and the 4 combinations that satisfy ^^ ( english french ); no all-off, no all-on
    assert labels[:5] == ["=app-misc/hello-1.0 USE defaults",
                          "=app-misc/hello-1.0 USE='-broken-test english -french'",
                          "=app-misc/hello-1.0 USE='broken-test english -french'",
                          "=app-misc/hello-1.0 USE='-broken-test -english french'",
                          "=app-misc/hello-1.0 USE='broken-test -english french'"]
    # libgreet: no REQUIRED_USE, 3 flags: all 8 combinations (all-off and all-on among them), and its
    # reverse dependencies (greeter-extras only with the flag that pulls libgreet in)
    libgreet = labels[5:]
    assert libgreet[:3] == ["=dev-libs/libgreet-1.0 USE defaults", "=dev-libs/libgreet-1.0 all USE off",
                            "=dev-libs/libgreet-1.0 all USE on"]
    assert len([x for x in libgreet if "USE='" in x and "reverse" not in x]) == 6
    assert libgreet[-2:] == ["=dev-libs/libgreet-1.0 reverse dependency =app-misc/greeter-1.0",
                             "=dev-libs/libgreet-1.0 reverse dependency =app-misc/greeter-extras-1.0 USE='fancy'"]
    assert g["columns"] == [["amd64", "openrc"], ["amd64", "systemd"]]
    jobs = list(Job.objects.filter(group_id=g["id"]).order_by("row", "stage3"))
    assert len(jobs) == len(labels) * 2 and {j.state for j in jobs} == {"queued"}
    assert g["state"] == "queued" and g["counts"] == {"queued": len(jobs)}
    rdep = next(j for j in jobs if j.row == len(labels) - 1)
    assert rdep.values == {"atom": "=app-misc/greeter-extras-1.0", "use": "fancy",
                           "unmask": "=app-misc/hello-1.0 =dev-libs/libgreet-1.0", "with": "=dev-libs/libgreet-1.0"}
    assert rdep.snapshot == archtest.date and rdep.plan[-1]["parameters"] == rdep.values
    # the claim carries the values to the slave
    claimed = archtest.slave().claim().json()
    assert claimed["job"]["plan"][-1]["parameters"]["atom"] == "=app-misc/hello-1.0"
    # the seed makes the same group again
    again = post(archtest, "groups/archtest", {"packages": LIST, "bug": 123456, "seed": 5,
                                              "flavours": ["openrc", "systemd"]}).json()
    assert [row["label"] for row in again["rows"]] == labels


def test_arches_of_the_list_and_the_tester(archtest):
    r = post(archtest, "groups/archtest", {"packages": "=app-misc/hello-1.0 amd64 x86\n=dev-libs/libgreet-1.0",
                                           "arches": ["amd64", "x86"], "combinations": 0, "rdeps": 5, "seed": 1})
    assert r.status_code == 201, r.text
    g = r.json()
    assert g["columns"] == [["amd64", "openrc"], ["x86", "openrc"]]
    cells = {(c["row"], c["arch"]) for c in g["cells"]}
    rows = {row["label"]: i for i, row in enumerate(g["rows"])}
    extras = rows["=dev-libs/libgreet-1.0 reverse dependency =app-misc/greeter-extras-1.0 USE='fancy'"]
    assert (extras, "amd64") in cells and (extras, "x86") not in cells  # greeter-extras has no x86 keyword


@pytest.mark.parametrize(("body", "error"), [
    ({"packages": "=app-misc/nothere-1.0 amd64"}, "line 1: =app-misc/nothere-1.0 matches no package"),
    ({"packages": ">=app-misc/hello-1 amd64"}, "a stabilisation names one version"),
    ({"packages": "=app-misc/hello-1.0 sparc"}, "sparc: not an arch of"),
    ({"packages": "=app-misc/hello-1.0 ^"}, "'^' (the arches of the line above) on the first line"),
    ({"packages": "=app-misc/hello-1.0"}, "names no arch"),
    ({"packages": LIST, "filter": "arch ="}, "filter: cannot read"),
    ({"packages": LIST, "filter": 'colour == "red"'}, "filter: colour is not an axis"),
    ({"packages": LIST, "filter": 'arch == "sparc"'}, "the filter keeps no combination"),
])
@bad('archtest', 'an arch-testing request {body!r:.60}', '400 invalid_group listing every fault; nothing stored')
def test_bad_archtest_requests_store_nothing(archtest, body, error):
    r = post(archtest, "groups/archtest", body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_group" and any(error in e["message"] for e in r.json()["errors"]), r.text
    assert not Group.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"packages": "=app-misc/hello-1.0 amd64", "bug": "123;drop"}, "bug"),
    ({"packages": "=app-misc/hello-1.0 amd64", "combinations": 65}, "combinations"),
    ({"packages": "=app-misc/hello-1.0 amd64", "flavours": ["open rc"]}, "flavours"),
    ({"packages": "=app-misc/hello-1.0 amd64\0"}, ""),  # the API's JSON parser refuses NUL anywhere
    ({"packages": "x" * 20001}, "packages"),
])
@bad('api', 'an arch-testing request with a bad field ({field})',
     '400 invalid naming the field (parse_error for a NUL); nothing stored')
def test_bad_archtest_fields(archtest, body, field):
    r = post(archtest, "groups/archtest", body)
    assert r.status_code == 400, r.text
    assert r.json().get("field", "").startswith(field) if field else r.json()["code"] == "parse_error"
    assert not Group.objects.exists()


@bad('archtest', 'arch testing on a master that reads no snapshot', '400 invalid_group saying what it needs')
def test_archtest_needs_a_master_that_reads_snapshots(master):
    r = post(master, "groups/archtest", {"packages": LIST})
    assert r.status_code == 400 and "this master reads none" in r.text
    assert not Group.objects.exists()


def test_only_maintainers_make_groups(archtest):
    r = post(archtest, "groups/archtest", {"packages": LIST}, user="volunteer")
    assert r.status_code == 403
    assert requests.post(archtest.url + "/api/v1/groups/archtest", json={"packages": LIST}).status_code in (401, 403)


# -- matrices ---------------------------------------------------------------------------------------
@pytest.fixture
def params_tree(master_settings, tree_writer, make_branch):
    w = tree_writer
    w.jobuild("carol/matrix-1", 'PARAMETERS="mode:/fast|slow/ level:word=1"\nARCH="amd64 x86"')
    w.jobuild("carol/check-1", 'PARAMETERS="level:word"')
    w.jobuild("carol/needs-three-1", 'SIDEPEND="carol/check[level=3]"')
    w.jobuild("carol/needs-four-1", 'SIDEPEND="carol/check[level=4]"')
    master_settings.AUTOTUA_TREE = make_branch(w.root)
    return w


def test_a_matrix_of_values_flavours_and_arches_with_a_filter(master, params_tree):
    body = {"root": "carol/matrix", "parameters": {"mode": ["fast", "slow"], "level": ["1", "2"]},
            "arches": ["amd64", "x86"], "flavours": ["openrc", "systemd"],
            "filter": '!(arch == "x86" && flavour == "systemd") && !(mode == "slow" and level == "2")'}
    r = post(master, "groups/", body, user="carol")
    assert r.status_code == 201, r.text
    g = r.json()
    assert [row["parameters"] for row in g["rows"]] == [
        {"mode": "fast", "level": "1"}, {"mode": "fast", "level": "2"}, {"mode": "slow", "level": "1"},
        {"mode": "slow", "level": "2"}]
    kept = {(c["row"], c["arch"], c["flavour"]) for c in g["cells"]}
    assert len(kept) == 3 * 3  # rows 0-2, each on amd64/openrc, amd64/systemd, x86/openrc
    assert (3, "amd64", "openrc") not in kept and (0, "x86", "systemd") not in kept
    assert Job.objects.filter(group_id=g["id"]).count() == 9
    job = Job.objects.filter(group_id=g["id"], row=2, arch="x86").get()
    assert (job.values, job.stage3, job.label) == ({"mode": "slow", "level": "1"}, "openrc",
                                                  "carol/matrix-1[level=1,mode=slow]")
    listed = requests.get(master.url + f"/api/v1/jobs/?group={g['id']}").json()
    assert listed["count"] == 9 and listed["results"][0]["group"] == g["id"]
    groups = requests.get(master.url + "/api/v1/groups/").json()["results"]
    assert [(x["id"], x["state"], x["counts"]) for x in groups] == [(g["id"], "queued", {"queued": 9})]


def test_a_groups_jobs_take_fair_turns(master, params_tree):
    """A group's jobs are queued in bulk with the turns one at a time would get them (issue 14's fair
    shares): consecutive for their owner, so another owner's job queued after them is not starved."""
    from django.contrib.auth import get_user_model

    r = post(master, "groups/", {"root": "carol/matrix", "parameters": {"mode": ["fast", "slow"],
                                                                        "level": ["1", "2"]}}, user="carol")
    assert r.status_code == 201, r.text
    turns = list(Job.objects.filter(group_id=r.json()["id"]).order_by("row").values_list("turn", flat=True))
    assert turns == [1, 2, 3, 4]
    bobs = Job.objects.create_job(root="carol/matrix", parameters={"mode": "fast", "level": "1"},
                                  owner=get_user_model().objects.get(username="bob"))
    assert (bobs.state, bobs.turn) == ("queued", 1)  # not behind carol's four: the head of the queue's turn


@bad('parameter', 'a matrix whose values the jobuild refuses',
     '400 invalid_group naming each row and arch; nothing stored')
def test_a_matrix_with_bad_values_stores_nothing(master, params_tree):
    body = {"root": "carol/matrix", "parameters": {"mode": ["fast", "medium", "$(reboot)"]}, "arches": ["amd64"]}
    r = post(master, "groups/", body, user="carol")
    assert r.status_code == 400
    assert [(e["row"], e["arch"]) for e in r.json()["errors"]] == [("mode=medium", "amd64"),
                                                                   ("mode=$(reboot)", "amd64")]
    assert "does not match /fast|slow/" in r.json()["errors"][0]["message"]
    r = post(master, "groups/", {"root": "carol/matrix", "parameters": {"mode": ["fast"]}, "arches": ["arm64"]},
             user="carol")
    assert r.status_code == 400
    assert r.json()["errors"] == [{"row": "mode=fast", "arch": "arm64",
                                   "message": 'carol/matrix-1 has ARCH="amd64 x86", which does not include arm64'}]
    assert not Group.objects.exists() and not Job.objects.exists()


# -- parameters through the job API -----------------------------------------------------------------
@pytest.mark.parametrize(("values", "error"), [
    ({"mode": "medium"}, "mode: 'medium' does not match /fast|slow/"),
    ({"mode": "fast", "level": "$(id)"}, "level: '$(id)' is not a word"),
    ({"mode": "fast", "colour": "red"}, "'colour' is not a parameter of this jobuild"),
    ({}, "mode: a value is required"),
])
@bad('parameter', 'job values {values!r}', 'the job is invalid, its error naming the value; it never reaches a slave')
def test_bad_values_make_an_invalid_job(master, params_tree, values, error):
    job = master.create_job("carol/matrix", "carol", parameters=values)
    assert job["state"] == "invalid" and any(error in e["message"] for e in job["errors"]), job["errors"]
    assert job["parameters"] == values  # as asked, while it is invalid
    assert master.slave().claim().json()["run"] is None


@pytest.mark.parametrize(("values", "field"), [
    ({"mode": "a\0b"}, ""),  # the API's JSON parser refuses NUL and lone surrogates anywhere: parse_error
    ({"mode": "\ud800"}, ""),
    ({"mode": "x" * 4097}, "parameters.mode"),
    ({"mode": ["fast"]}, "parameters.mode"),
    ({f"p{i}": "x" for i in range(33)}, "parameters"),
])
@bad('parameter', 'job values the database could not hold ({field})', '400 invalid naming the field; no job stored')
def test_values_refused_by_the_api(master, params_tree, values, field):
    r = master.person("carol").post(master.url + "/api/v1/jobs/", json={"root": "carol/matrix", "parameters": values})
    assert r.status_code == 400, r.text
    assert r.json().get("field") == field if field else r.json()["code"] == "parse_error"
    assert not Job.objects.exists()


def test_values_against_the_snapshot(archtest):
    ok = archtest.create_job("gentoo/arch-test", "gentoo", parameters={"atom": "=app-misc/hello-1.0",
                                                                        "use": "french -english"})
    assert ok["state"] == "queued", ok["errors"]
    assert ok["parameters"] == {"atom": "=app-misc/hello-1.0", "use": "-english french", "unmask": "", "with": ""}
    assert ok["label"] == "gentoo/arch-test-1[atom==app-misc/hello-1.0,unmask=,use=-english%20french,with=]"
    gone = archtest.create_job("gentoo/arch-test", "gentoo", parameters={"atom": "=app-misc/hello-9"})
    assert gone["state"] == "invalid" and gone["errors"][0]["message"] == (
        f"gentoo/arch-test-1: atom: =app-misc/hello-9 matches no ebuild in the Gentoo repository of {archtest.date}")
    flag = archtest.create_job("gentoo/arch-test", "gentoo",
                               parameters={"atom": "=app-misc/hello-1.0", "use": "german"})
    assert "USE flag german is not in the IUSE of app-misc/hello-1.0" in flag["errors"][0]["message"]


def test_a_sidepend_names_its_values(master, params_tree):
    a = master.create_job("carol/needs-three", "carol")
    b = master.create_job("carol/needs-four", "carol")
    assert a["state"] == b["state"] == "waiting"
    (sa,), (sb,) = a["sidepends"], b["sidepends"]
    assert (sa["parameters"], sb["parameters"]) == ({"level": "3"}, {"level": "4"})
    assert sa["provider"] != sb["provider"]  # other values: other work, another provider
    provider = Job.objects.get(pk=sa["provider"])
    assert provider.values == {"level": "3"} and provider.label == "carol/check-1[level=3]"
    slave = master.slave()
    claimed = slave.claim().json()
    assert claimed["job"]["id"] == sa["provider"] and claimed["job"]["plan"][0]["parameters"] == {"level": "3"}
    slave.run_through(claimed, "passed")
    assert master.job(a["id"])["state"] == "queued" and master.job(b["id"])["state"] == "waiting"
    assert Provision.objects.get(parameters={"level": "3"}).state == "passed"
    # a later job needing level 3 is queued at once; a job that runs carol/check with level 3 itself
    # would have satisfied it too
    assert master.create_job("carol/needs-three", "carol")["state"] == "queued"


# -- second opinions, the report, cancel and rerun --------------------------------------------------
def _run(slave, claimed, status, results=None):
    run, plan = claimed["run"], claimed["job"]["plan"]
    for e in plan:
        last = e["index"] == len(plan) - 1
        st = status if last else "passed"
        phases = [{"name": "src_test", "status": st}]
        r = slave.result(run, e["index"], st, phases=phases, results=(results or {}) if last else {})
        assert r.status_code == 200, r.text
    assert slave.finish(run, status).status_code == 200


FAILED_TEST = {"archtest.outcome": "failed", "archtest.failure": "test", "archtest.package": "app-misc/hello-1.0",
               "archtest.phase": "test", "archtest.message": "src_test fails on purpose: USE=broken-test"}


def one_cell(master, seed=1):
    r = post(master, "groups/archtest", {"packages": "=app-misc/tiny-1.1 amd64", "seed": seed})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_failure_is_asked_again_elsewhere(archtest):
    x, y = archtest.slave("x"), archtest.slave("y")
    g = one_cell(archtest)
    first = x.claim().json()
    _run(x, first, "failed", FAILED_TEST)
    second = Job.objects.get(second_opinion_of_id=first["job"]["id"])
    assert (second.state, second.avoid_slave.name, second.values) == ("queued", "x", Job.objects.get(
        pk=first["job"]["id"]).values)
    cell = requests.get(archtest.url + f"/api/v1/groups/{g['id']}/").json()["cells"][0]
    assert cell["verdict"] == "checking" and cell["text"] == "failed (test) on x; second opinion queued"
    assert x.claim().json()["run"] is None  # never on the slave whose failure it checks
    _run(y, y.claim().json(), "passed")
    g = requests.get(archtest.url + f"/api/v1/groups/{g['id']}/").json()
    assert g["state"] == "disputed" and g["cells"][0]["text"] == "failed (test) on x only, passed on y"
    assert g["cells"][0]["slaves"] == ["x", "y"]


def test_failed_on_two_slaves(archtest):
    x, y = archtest.slave("x"), archtest.slave("y")
    g = one_cell(archtest)
    _run(x, x.claim().json(), "failed", FAILED_TEST)
    _run(y, y.claim().json(), "failed", FAILED_TEST)
    assert Job.objects.filter(group_id=g["id"]).count() == 2  # a second opinion gets no third
    body = requests.get(archtest.url + f"/api/v1/groups/{g['id']}/").json()
    assert body["state"] == "failed" and body["cells"][0]["text"] == "failed (test) on 2 slaves: x, y"


def test_no_other_slave_no_second_opinion(archtest):
    x = archtest.slave("x")
    archtest.slave("arm", arch="arm64")
    archtest.slave("other-flavour", flavours=("musl",))
    g = one_cell(archtest)
    _run(x, x.claim().json(), "failed", FAILED_TEST)
    assert Job.objects.filter(group_id=g["id"]).count() == 1
    cell = requests.get(archtest.url + f"/api/v1/groups/{g['id']}/").json()["cells"][0]
    assert (cell["verdict"], cell["text"]) == ("failed", "failed (test) on x; no other slave could give a second "
                                                          "opinion")


def test_the_report_names_what_failed_and_how(archtest):
    x, y = archtest.slave("x"), archtest.slave("y")
    r = post(archtest, "groups/archtest", {"packages": "=app-misc/hello-1.0 amd64", "bug": 7, "seed": 3,
                                           "combinations": 12})
    g = r.json()
    broken = [i for i, row in enumerate(g["rows"]) if "broken-test " in row["parameters"]["use"] + " "
              and "-broken-test" not in row["parameters"]["use"]]
    assert len(broken) == 2
    for _ in range(len(g["rows"])):
        claimed = x.claim().json()
        job = Job.objects.get(pk=claimed["job"]["id"])
        if job.row in broken:
            _run(x, claimed, "failed", FAILED_TEST)
        else:
            _run(x, claimed, "passed", {"archtest.outcome": "passed"})
    for _ in broken:  # the second opinions, on y
        claimed = y.claim().json()
        _run(y, claimed, "failed", FAILED_TEST)
    text = requests.get(archtest.url + f"/api/v1/groups/{g['id']}/report.txt").text
    assert text.startswith(f"AutotuA arch testing #{g['id']}: bug 7: stabilisation of =app-misc/hello-1.0\n")
    assert "Bug: https://bugs.gentoo.org/7" in text and f"Repository: gentoo-{archtest.date}" in text
    assert "drawn with seed 3" in text and "amd64 (openrc stage3):" in text
    failed = [line for line in text.splitlines() if line.startswith("    [FAILED]")]
    assert failed == ["    [FAILED] USE='broken-test english -french': failed (test) on 2 slaves: x, y",
                      "    [FAILED] USE='broken-test -english french': failed (test) on 2 slaves: x, y"]
    assert text.count("[passed]") == len(g["rows"]) - 2
    assert "app-misc/hello-1.0 test; src_test fails on purpose: USE=broken-test" in text
    assert f"{archtest.url}/jobs/" in text and "/log" in text
    js = requests.get(archtest.url + f"/api/v1/groups/{g['id']}/report").json()
    rows = js["columns"][0]["packages"][0]["rows"]
    assert [(r["verdict"], r["failure"]) for r in rows if r["verdict"] != "passed"] == [("failed", "test")] * 2
    assert js["state"] == "failed" and js["snapshot"] == archtest.date and js["seed"] == 3


def test_cancel_and_rerun_a_group(archtest):
    x = archtest.slave("x")
    g = post(archtest, "groups/archtest", {"packages": "=dev-libs/libgreet-1.0 amd64", "seed": 2,
                                           "combinations": 0, "rdeps": 0}).json()
    assert len(g["rows"]) == 3
    _run(x, x.claim().json(), "passed")
    alice = archtest.person("alice")
    assert archtest.person("bob").post(archtest.url + f"/api/v1/groups/{g['id']}/cancel", json={}).status_code == 403
    r = alice.post(archtest.url + f"/api/v1/groups/{g['id']}/cancel", json={"reason": "wrong list"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert r.json()["counts"] == {"cancelled": 2, "passed": 1}
    r = alice.post(archtest.url + f"/api/v1/groups/{g['id']}/rerun", json={})
    assert r.status_code == 200 and r.json()["counts"] == {"passed": 1, "queued": 2}
    assert Job.objects.filter(group_id=g["id"]).count() == 5
    r = alice.post(archtest.url + f"/api/v1/groups/{g['id']}/rerun", json={})
    assert r.status_code == 400 and r.json()["code"] == "nothing"


def test_a_slave_that_fails_what_others_pass_is_flagged(master, settings, params_tree):
    settings.AUTOTUA_FLAG_AFTER_RUNS = 3
    bad_slave, good = master.slave("broken-box"), master.slave("good-box")
    for _ in range(3):
        master.create_job("carol/matrix", "carol", parameters={"mode": "fast"})
        _run(bad_slave, bad_slave.claim().json(), "failed")
    from autotua_master.slaves.flags import flagged
    from autotua_master.slaves.models import Slave

    ids = {s.name: s.pk for s in Slave.objects.all()}
    assert flagged(list(ids.values())) == {}  # nobody passed the same work yet
    master.create_job("carol/matrix", "carol", parameters={"mode": "fast"})
    _run(good, good.claim().json(), "passed")
    assert flagged(list(ids.values())) == {
        ids["broken-box"]: "none of its last 3 runs passed, while good-box passed the same work"}
    # the same jobuild with other values is other work
    master.create_job("carol/matrix", "carol", parameters={"mode": "slow"})
    _run(good, good.claim().json(), "passed")
    assert set(flagged(list(ids.values()))) == {ids["broken-box"]}
    # passing once clears it
    master.create_job("carol/matrix", "carol", parameters={"mode": "slow"})
    _run(bad_slave, bad_slave.claim().json(), "passed")
    assert flagged(list(ids.values())) == {}


# -- the CLI ----------------------------------------------------------------------------------------
def test_the_cli_arch_tests_a_package_list(archtest, tmp_path, capsys):
    import threading

    from rest_framework.authtoken.models import Token

    from autotua.cli.jobuild import main

    archtest.person("alice")
    token = Token.objects.get(user__username="alice").key
    listing = tmp_path / "packages"
    listing.write_text("=dev-libs/libgreet-1.0 amd64\n")
    x = archtest.slave("x")

    stop = threading.Event()

    def work():  # a slave that passes whatever it gets, while the CLI waits (over HTTP only)
        while not stop.wait(0.1):
            claimed = x.claim().json()
            if claimed["run"] is not None:
                _run(x, claimed, "passed")

    worker = threading.Thread(target=work)
    worker.start()
    try:
        rc = main(["archtest", "--master", archtest.url, "--token", token, str(listing), "--bug", "99", "--seed",
                   "4", "--combinations", "0", "--rdeps", "0", "--wait", "--poll", "0.2"])
    finally:
        stop.set()
        worker.join(60)
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    g = Group.objects.get()
    assert out.startswith(f">>> group #{g.pk}: bug 99: stabilisation of =dev-libs/libgreet-1.0: 3 configurations, "
                          f"3 jobs, seed 4, snapshot {archtest.date}\n")
    assert f"AutotuA arch testing #{g.pk}: bug 99" in out and "State: passed (3 passed)" in out
    rc = main(["report", "--master", archtest.url, str(g.pk), "--json"])
    assert rc == 0 and json_of(capsys.readouterr().out)["state"] == "passed"


def json_of(text: str) -> dict:
    import json

    return json.loads(text)


@bad('archtest', 'a bad package list given to autotua-jobuild archtest', 'exit status 1, every fault on stderr')
def test_the_cli_says_every_fault(archtest, tmp_path, capsys, monkeypatch):
    from rest_framework.authtoken.models import Token

    from autotua.cli.jobuild import main

    archtest.person("alice")
    monkeypatch.setenv("AUTOTUA_TOKEN", Token.objects.get(user__username="alice").key)
    monkeypatch.setattr("sys.stdin", io.StringIO("=app-misc/nothere-1 amd64\n=app-misc/hello-1.0 sparc\n"))
    rc = main(["archtest", "--master", archtest.url, "-"])
    _, err = capsys.readouterr()
    assert rc == 1
    assert " * ERROR line 1: =app-misc/nothere-1 matches no package in the Gentoo repository" in err
    assert " * ERROR line 2: sparc: not an arch of" in err and not Group.objects.exists()
