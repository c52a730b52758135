"""Arch testing's reading of a real repository (egencache's md5-cache, read with portage): atoms and
versions, IUSE and REQUIRED_USE, reverse dependencies; NATTkA's package lists; tatt's USE sampling."""

from __future__ import annotations

import json

import pytest

from autotua.archtest import (
    IGNORE_PREFIXES,
    Combination,
    PackageListError,
    ReverseDependency,
    parse_package_list,
    reverse_dependencies,
    suggested_keywords,
    use_combinations,
)
from autotua.demo.repository import build_repository
from autotua.ebuildrepo import EbuildRepository, RepositoryError

bad = pytest.mark.bad_input


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    work = tmp_path_factory.mktemp("repo")
    return build_repository(work / "gentoo", "20261130", work / "distfiles")


@pytest.fixture
def repo(tree, tmp_path):
    return EbuildRepository(tree, label="the test repository", index_dir=tmp_path / "index")


def test_atoms_versions_and_use(repo):
    assert repo.arches == ("amd64", "arm64", "x86")
    assert [str(p) for p in repo.match("dev-libs/libgreet")] == ["dev-libs/libgreet-0.9", "dev-libs/libgreet-1.0"]
    assert [str(p) for p in repo.match("<dev-libs/libgreet-1")] == ["dev-libs/libgreet-0.9"]
    assert [str(p) for p in repo.match("app-misc/hello:0")] == ["app-misc/hello-1.0"]
    assert repo.match("app-misc/hello:1") == [] and repo.match("app-misc/nothere") == []
    # a prefix of another package's name is another package
    assert [str(p) for p in repo.match("app-misc/greeter")] == ["app-misc/greeter-1.0"]
    assert repo.iuse_defaults("app-misc/hello-1.0") == {"english": True, "french": False, "broken-test": False}
    assert repo.required_use("app-misc/hello-1.0") == "^^ ( english french )"
    assert repo.check_required_use("app-misc/hello-1.0", ["french", "broken-test"])
    assert not repo.check_required_use("app-misc/hello-1.0", ["english", "french"])
    assert not repo.check_required_use("app-misc/hello-1.0", [])
    assert repo.check_required_use("dev-libs/libgreet-1.0", [])
    assert repo.keywords("dev-libs/libgreet-1.0") == ["~amd64", "~x86"]


def test_best_version_as_nattka_chooses(repo):
    assert repo.best(repo.match("dev-libs/libgreet")) == "dev-libs/libgreet-1.0"
    assert repo.best(repo.match("app-misc/tiny")) == "app-misc/tiny-1.1"


def test_reverse_dependencies_match_the_version(repo):
    # >=0.9 and the conditional >=1.0[unicode] match 1.0; <1.0 does not
    assert repo.reverse_dependencies("dev-libs/libgreet-1.0") == {
        "app-misc/greeter-1.0": ["DEPEND", "RDEPEND"], "app-misc/greeter-extras-1.0": ["RDEPEND"]}
    assert set(repo.reverse_dependencies("dev-libs/libgreet-0.9")) == {"app-misc/greeter-1.0", "app-misc/oldgreet-1.0"}
    assert repo.reverse_dependencies("dev-libs/slowlib-1.0") == {"app-misc/hello-1.0": ["DEPEND", "RDEPEND"]}
    assert repo.reverse_dependencies("app-misc/hello-1.0") == {}
    assert repo.flags_pulling("app-misc/greeter-1.0", "dev-libs/libgreet-1.0") == []
    assert repo.flags_pulling("app-misc/greeter-extras-1.0", "dev-libs/libgreet-1.0") == ["fancy"]
    assert repo.flags_pulling("app-misc/oldgreet-1.0", "dev-libs/libgreet-1.0") is None


def test_the_dependency_strings_are_read_once_and_kept(repo, tree, tmp_path):
    texts = repo.dependency_texts()
    stored = tmp_path / "index" / "gentoo.deps.json"
    assert json.loads(stored.read_text())["entries"] == texts
    assert texts["app-misc/greeter-extras-1.0"] == ["8", {"RDEPEND": "fancy? ( >=dev-libs/libgreet-1.0[unicode] )"}]
    assert "app-misc/tiny-1.0" not in texts  # no dependency at all
    # another process (another EbuildRepository) reads the stored ones instead of the md5-cache
    again = EbuildRepository(tree, index_dir=tmp_path / "index")
    stored.write_text(json.dumps({"version": 2, "entries": {}}))
    assert again.reverse_dependencies("dev-libs/libgreet-1.0") == {}


def test_no_md5_cache_is_no_repository(tmp_path):
    with pytest.raises(RepositoryError, match="no metadata/md5-cache"):
        EbuildRepository(tmp_path)


# -- package lists ----------------------------------------------------------------------------------
def test_package_lists_as_nattka_reads_them(repo):
    text = """
=app-misc/hello-1.0 amd64 ~x86
dev-libs/libgreet-1.0 ^   # the bare cpv form, same arches as above
=app-misc/tiny-1.1 *
=app-misc/tiny-1.0 -
=app-misc/greeter-1.0 ^ arm64
"""
    got = parse_package_list(text, repo)
    assert [(p.line, p.atom, p.arches) for p in got] == [
        (2, "=app-misc/hello-1.0", ("amd64", "x86")),
        (3, "=dev-libs/libgreet-1.0", ("amd64", "x86")),
        (4, "=app-misc/tiny-1.1", ("amd64",)),  # '*': the stable keywords of the other versions, ~ here
        (6, "=app-misc/greeter-1.0", ("amd64", "arm64")),  # '^' follows the last line that named arches
    ]
    # lines without arches get the tester's; the tester's arches limit every line
    got = parse_package_list("=app-misc/hello-1.0\n=dev-libs/libgreet-1.0 x86 amd64\n=app-misc/tiny-1.1 x86",
                             repo, arches=("amd64",))
    assert [(p.cpv, p.arches) for p in got] == [("app-misc/hello-1.0", ("amd64",)),
                                                ("dev-libs/libgreet-1.0", ("amd64",))]
    # a keywording takes any spec and its best match
    got = parse_package_list(">=dev-libs/libgreet-0.9 amd64\napp-misc/hello:0 ^", repo, stable=False)
    assert [p.cpv for p in got] == ["dev-libs/libgreet-1.0", "app-misc/hello-1.0"]
    assert suggested_keywords(repo, "app-misc/tiny-1.1", stable=False) == []


@bad('archtest', 'a package list with faults on several lines', 'every fault, each naming its line')
def test_every_fault_of_a_package_list(repo):
    text = "\n".join([
        "=app-misc/nothere-1 amd64",
        "^",
        ">=app-misc/hello-1 amd64",
        "=app-misc/hello-1.0 sparc",
        "=app-misc/hello-1.0 ^",
        "=app-misc/hello-1.0[english] amd64",
        "$(reboot) amd64",
        "app-misc/hello-1.0",
    ])
    with pytest.raises(PackageListError) as e:
        parse_package_list(text, repo)
    assert e.value.errors == [
        "line 1: =app-misc/nothere-1 matches no package in the test repository",
        "line 2: '^' is not a package atom (like =app-misc/hello-1.0 or dev-libs/foo)",
        "line 3: >=app-misc/hello-1: a stabilisation names one version (=cat/pkg-ver), with no other operator or slot",
        "line 4: sparc: not an arch of the test repository (amd64 arm64 x86)",
        "line 5: '^' (the arches of the line above) on the first line",
        "line 6: '=app-misc/hello-1.0[english]': a blocker, a USE dependency, a slot operator or a wildcard is not "
        "a package to test",
        "line 7: '$(reboot)' is not a package atom (like =app-misc/hello-1.0 or dev-libs/foo)",
        "line 8: app-misc/hello-1.0 names no arch, and none were given for such lines",
    ]


@pytest.mark.parametrize(("text", "kw", "error"), [
    ("", {}, "the package list is empty"),
    ("# only a comment\n\n", {}, "the package list is empty"),
    ("=app-misc/hello-1.0 amd64", {"arches": ("sparc",)}, "arch 'sparc' is not in"),
    ("=app-misc/hello-1.0 x86", {"arches": ("amd64",)}, "no package of the list is for the arches given"),
    ("=app-misc/hello-1.0 amd64\0", {}, "line 1: holds a NUL character"),
    ("=app-misc/hello-1.0 amd64\n" * 201, {}, "201 lines; a package list may have 200 at most"),
])
@bad('archtest', 'a package list {text!r:.40} ({kw})', 'PackageListError: {error}')
def test_package_lists_refused_whole(repo, text, kw, error):
    with pytest.raises(PackageListError, match=error):
        parse_package_list(text, repo, **kw)


# -- tatt's sampling ----------------------------------------------------------------------------------
def test_few_flags_are_tried_all_satisfying_required_use(repo):
    got = use_combinations(repo, "app-misc/hello-1.0", 12, seed=1)
    # 3 flags, 8 combinations, at most 12 asked: all of them, but only the 4 with one language;
    # neither all-off nor all-on satisfies ^^ ( english french )
    assert got == [Combination("default", ""),
                   Combination("sample", "-broken-test english -french"),
                   Combination("sample", "broken-test english -french"),
                   Combination("sample", "-broken-test -english french"),
                   Combination("sample", "broken-test -english french")]
    for c in got[1:]:
        on = [w for w in c.use.split() if not w.startswith("-")]
        assert repo.check_required_use("app-misc/hello-1.0", on)
    assert got[0].label == "USE defaults" and got[2].label == "USE='broken-test english -french'"


def test_many_flags_are_sampled_from_the_seed(repo):
    a = use_combinations(repo, "dev-libs/libgreet-1.0", 3, seed=7)
    assert [c.kind for c in a] == ["default", "all-off", "all-on", "sample", "sample", "sample"]
    assert (a[1].use, a[2].use) == ("-doc -static-libs -unicode", "doc static-libs unicode")
    assert len({c.use for c in a}) == 6  # N draws besides all-off and all-on, none twice
    assert use_combinations(repo, "dev-libs/libgreet-1.0", 3, seed=7) == a  # the seed makes it again
    others = {tuple(c.use for c in use_combinations(repo, "dev-libs/libgreet-1.0", 3, seed=s)) for s in range(8)}
    assert len(others) > 1
    # N = 0: all-off and all-on only (tatt's usecombis=0), beside the defaults
    assert [c.kind for c in use_combinations(repo, "dev-libs/libgreet-1.0", 0)] == ["default", "all-off", "all-on"]
    # no flag to vary: the defaults only; tatt's ignored prefixes are not varied
    assert use_combinations(repo, "app-misc/tiny-1.1") == [Combination("default", "")]
    assert "test" in IGNORE_PREFIXES and "debug" in IGNORE_PREFIXES


def test_reverse_dependencies_drawn_for_an_arch(repo):
    assert reverse_dependencies(repo, "dev-libs/libgreet-1.0", "amd64", 10, seed=1) == [
        ReverseDependency("app-misc/greeter-1.0", "", ("DEPEND", "RDEPEND")),
        ReverseDependency("app-misc/greeter-extras-1.0", "fancy", ("RDEPEND",))]
    # x86: greeter-extras has no x86 keyword
    assert [r.cpv for r in reverse_dependencies(repo, "dev-libs/libgreet-1.0", "x86", 10, seed=1)] == [
        "app-misc/greeter-1.0"]
    one = reverse_dependencies(repo, "dev-libs/libgreet-1.0", "amd64", 1, seed=1)
    assert len(one) == 1 and one == reverse_dependencies(repo, "dev-libs/libgreet-1.0", "amd64", 1, seed=1)
    # the bug's own packages are not tested again as reverse dependencies
    assert [r.cpv for r in reverse_dependencies(repo, "dev-libs/libgreet-1.0", "amd64", 10,
                                                exclude=("app-misc/greeter-1.0",))] == ["app-misc/greeter-extras-1.0"]
