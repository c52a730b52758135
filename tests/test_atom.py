import pytest

from autotua.atom import AllOf, AnyOf, Atom, AtomError, JobuildId, iter_atoms, parse_depend
from autotua.version import Version


def jids(*texts):
    return [JobuildId.parse(t) for t in texts]


def test_jobuild_id():
    j = JobuildId.parse("alice/hello-suite-1.10")
    assert (j.user, j.name, j.version) == ("alice", "hello-suite", Version("1.10"))
    assert j.key == "alice/hello-suite"
    assert j.p == "hello-suite-1.10"
    assert j.path == "alice/hello-suite/hello-suite-1.10.jobuild"
    assert str(j) == "alice/hello-suite-1.10"


@pytest.mark.parametrize(
    ("text", "op", "version"),
    [
        ("alice/foo", None, None),
        ("=alice/foo-1.0", "=", "1.0"),
        (">=alice/foo-1", ">=", "1"),
        ("<=alice/foo-2.0.13", "<=", "2.0.13"),
        (">alice/foo-bar-1", ">", "1"),
        ("<alice/foo-bar-1.2", "<", "1.2"),
    ],
)
def test_parse(text, op, version):
    a = Atom.parse(text)
    assert a.op == op
    assert a.version == (Version(version) if version else None)
    assert str(a) == text


def test_name_with_hyphens_and_digits():
    a = Atom.parse("=bob/x11-libs-test-3.1")
    assert (a.name, str(a.version)) == ("x11-libs-test", "3.1")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("foo", "exactly one '/'"),
        ("alice/foo/bar", "exactly one '/'"),
        ("alice/foo-1.0", "a version needs an operator"),
        (">=alice/foo", "needs a version"),
        ("~alice/foo-1", "unknown operator"),
        ("!alice/foo", "unknown operator"),
        ("==alice/foo-1", "unknown operator"),
        ("=alice/foo-1.05", "leading zero"),
        ("Alice/foo", "lower-case"),
        ("overlays/foo", "reserved"),
        ("alice/templates", "reserved"),
        ("alice/", "name is empty"),
        ("alice/fo o", "no whitespace"),
        ("alice/foo$", "may hold only"),
        ("=alice/foo-1-2", "must not end in '-<version>'"),
    ],
)
@pytest.mark.bad_input('atom', 'the atom {text!r}', 'AtomError naming the atom: {why}')
def test_malformed_atom_names_atom_and_fault(text, why):
    with pytest.raises(AtomError) as e:
        Atom.parse(text)
    assert why in str(e.value)
    if text.strip():
        assert repr(text) in str(e.value)


def test_matches_each_operator():
    cands = jids("alice/foo-1.0", "alice/foo-1.0.0", "alice/foo-1.9", "alice/foo-1.10", "bob/foo-5")

    def match(atom):
        return [str(j.version) for j in cands if Atom.parse(atom).matches(j)]

    assert match("alice/foo") == ["1.0", "1.0.0", "1.9", "1.10"]
    assert match("=alice/foo-1.0") == ["1.0"]
    assert match(">=alice/foo-1.9") == ["1.9", "1.10"]
    assert match(">alice/foo-1.9") == ["1.10"]
    assert match("<=alice/foo-1.0.0") == ["1.0", "1.0.0"]
    assert match("<alice/foo-1.9") == ["1.0", "1.0.0"]


def test_best_is_highest_match():
    cands = jids("alice/foo-1.0", "alice/foo-1.10", "alice/foo-1.9", "alice/foo-2")
    assert str(Atom.parse("alice/foo").best(cands)) == "alice/foo-2"
    assert str(Atom.parse("<alice/foo-2").best(cands)) == "alice/foo-1.10"
    assert Atom.parse(">alice/foo-2").best(cands) is None


def test_parse_depend_groups():
    nodes = parse_depend(">=alice/a-1 || ( bob/b ( carol/c =carol/d-2 ) ) alice/e")
    assert isinstance(nodes[0], Atom)
    assert isinstance(nodes[1], AnyOf)
    assert isinstance(nodes[1].members[1], AllOf)
    assert [str(a) for a in iter_atoms(nodes)] == [">=alice/a-1", "bob/b", "carol/c", "=carol/d-2", "alice/e"]
    assert str(nodes[1]) == "|| ( bob/b ( carol/c =carol/d-2 ) )"
    assert parse_depend("  \n ") == ()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("|| alice/a", "must be followed by ' ( '"),
        ("||( alice/a )", "must stand alone"),
        ("|| ( alice/a", "never closed"),
        ("alice/a )", "closes nothing"),
        ("|| ( )", "empty group"),
        ("alice/a-1", "a version needs an operator"),
    ],
)
@pytest.mark.bad_input('atom', 'the DEPEND string {text!r}', 'AtomError: {why}')
def test_parse_depend_errors(text, why):
    with pytest.raises(AtomError) as e:
        parse_depend(text, variable="SIDEPEND")
    assert why in str(e.value)
    assert "SIDEPEND" in str(e.value)
