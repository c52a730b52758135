"""Job parameters in the jobuild core: the declaration, the kinds and their values (hostile ones too),
atoms that name values, the depgraph's binding (root, DEPEND, SIDEPEND), patterns matched in the
metadata sandbox, and the phases seeing values as data."""

from __future__ import annotations

import pytest

from autotua.atom import Atom, AtomError, JobuildId
from autotua.depgraph import resolve
from autotua.metadata import Limits, MetadataDaemon, MetadataError
from autotua.params import (
    MAX_VALUE,
    Parameter,
    ParameterError,
    bind,
    canonical,
    check_syntax,
    environment,
    identity,
    label,
    parse_declaration,
)
from autotua.tree import DirTree
from tests.test_jobuild_sh import keyed, run_phases

bad = pytest.mark.bad_input
J = JobuildId.parse("alice/foo-1")


def test_declaration_kinds_defaults_and_patterns():
    params = parse_declaration("atom:atom use:use-flags= unmask:atoms= mode:/fast|slow/=fast "
                               "path:/[a-z/]+/=a/b note:/.*/ w:word=x.y-1 list:atoms==a/b-2%20=c/d-1")
    assert params == (
        Parameter("atom", "atom"), Parameter("use", "use-flags", default=""), Parameter("unmask", "atoms", default=""),
        Parameter("mode", "pattern", "fast|slow", "fast"), Parameter("path", "pattern", "[a-z/]+", "a/b"),
        Parameter("note", "pattern", ".*"), Parameter("w", "word", default="x.y-1"),
        Parameter("list", "atoms", default="=a/b-2 =c/d-1"))
    assert [p.required for p in params] == [True, False, False, False, False, True, False, False]
    assert params[0].variable == "PARAM_ATOM" and params[4].variable == "PARAM_PATH"
    # the normalised text reads back to the same
    assert parse_declaration(" ".join(str(p) for p in params)) == params


@pytest.mark.parametrize(("text", "error"), [
    ("atom", "is declared name:kind"),
    ("Atom:atom", "must be lower-case letters"),
    ("a:atom a:word", "declared twice"),
    ("a:number", "unknown kind 'number'"),
    ("a:/x", "a pattern is written /pattern/"),
    ("a://", "the pattern is empty"),
    ("a:word=$(id)", "its default: a: '$(id)' is not a word"),
    ("a:atom=rm%20-rf", "is not a package atom"),
    ("a:use-flags=-x%20x", "both on and off"),
    ("a:word=%ff", "not valid percent-encoded UTF-8"),
    (" ".join(f"p{i}:word=x" for i in range(33)), "33 parameters; a jobuild may take 32"),
])
@bad('jobuild', 'a PARAMETERS declaration {text!r}', 'metadata error naming the parameter: {error}')
def test_bad_declarations(text, error):
    with pytest.raises(ParameterError, match=error.replace("$", r"\$").replace("(", r"\(").replace(")", r"\)")):
        parse_declaration(text)


WORD, ATOM, ATOMS = Parameter("w", "word"), Parameter("a", "atom"), Parameter("l", "atoms")
USE, ANY = Parameter("u", "use-flags"), Parameter("n", "pattern", ".*")


def test_values_in_canonical_form():
    assert check_syntax(USE, "french -english  broken-test french") == "broken-test -english french"
    assert check_syntax(ATOMS, "=a/b-1  c/d =a/b-1") == "=a/b-1 c/d"
    assert check_syntax(ATOM, ">=dev-libs/foo-1.2:0") == ">=dev-libs/foo-1.2:0"
    assert check_syntax(WORD, "gcc-13.2+x_y") == "gcc-13.2+x_y"
    # a pattern's value is any text: it is data
    assert check_syntax(ANY, "$(touch /x)\n'\"`;|&<>\\") == "$(touch /x)\n'\"`;|&<>\\"
    assert check_syntax(ANY, "Grüße, 日本") == "Grüße, 日本"


HOSTILE = [
    (WORD, "$(id)", "is not a word"),
    (WORD, "a b", "is not a word"),
    (WORD, "-rf", "is not a word"),
    (WORD, "x" * 65, "is not a word"),
    (ATOM, "=app-misc/hello-1.0;id", "is not a package atom"),
    (ATOM, "app-misc/hello\n", "is not a package atom"),
    (ATOM, "!app-misc/hello", "a blocker, a USE dependency"),
    (ATOM, "app-misc/hello[foo]", "a blocker, a USE dependency"),
    (ATOM, "app-misc/hello:=", "a blocker, a USE dependency"),
    (ATOM, "=app-misc/hello-1*", "a blocker, a USE dependency"),
    (ATOM, "app-misc/hello::gentoo", "is not a package atom"),
    (ATOMS, "a/b\tc/d", "other whitespace or control characters"),
    (USE, "foo $(id)", "is not a USE flag"),
    (USE, "foo\nbar", "other whitespace or control characters"),
    (USE, "-", "is not a USE flag"),
    (USE, "x -x", "both on and off"),
    (USE, " ".join(f"f{i}" for i in range(257)), "257 USE flags; at most 256"),
    (ANY, "a\0b", "holds a NUL character"),
    (ANY, "x" * (MAX_VALUE + 1), f"{MAX_VALUE + 1} characters; at most {MAX_VALUE}"),
    (ANY, "\ud800", "not valid Unicode"),
    (ANY, 12, "a value is a string, not int"),
]


@pytest.mark.parametrize(("param", "value", "error"), HOSTILE, ids=[f"{p.kind}-{i}" for i, (p, _, _) in
                                                                     enumerate(HOSTILE)])
@bad('parameter', 'a {param.kind} value {value!r:.60}', 'refused: {error}')
def test_hostile_values_are_refused(param, value, error):
    with pytest.raises(ParameterError, match=error.replace("(", r"\(").replace(")", r"\)")):
        check_syntax(param, value)


@bad('parameter', 'a value for a parameter the jobuild does not take', 'error naming it and what it takes')
@bad('parameter', 'no value for a parameter without a default', 'error naming it and its kind')
def test_bind_fills_defaults_and_names_every_fault():
    params = parse_declaration("atom:atom use:use-flags= mode:/fast|slow/=fast")
    values, errors = bind(params, {"atom": "=a/b-1", "use": "y x"}, match=lambda p, v: v in p.split("|"))
    assert (values, errors) == ({"atom": "=a/b-1", "use": "x y", "mode": "fast"}, [])
    values, errors = bind(params, {"mode": "medium", "colour": "red", "use": "$x"},
                          match=lambda p, v: v in p.split("|"))
    assert values == {}
    assert errors == ["'colour' is not a parameter of this jobuild (it takes: atom, mode, use)",
                      "atom: a value is required (atom)",
                      "use: '$x' is not a USE flag (letters, digits, '+_@-', a leading '-' to turn it off)",
                      "mode: 'medium' does not match /fast|slow/"]


def test_identity_and_labels():
    d = "a" * 64
    assert identity(d, {}) == d
    one, two = identity(d, {"mode": "fast"}), identity(d, {"mode": "slow"})
    assert len({d, one, two}) == 3 and len(one) == 64
    assert identity(d, {"b": "2", "a": "1"}) == identity(d, {"a": "1", "b": "2"})
    assert canonical({"use": "french -english", "atom": "=a/b-1"}) == "atom==a/b-1,use=french%20-english"
    assert label("alice/foo-1", {"x": "a,b]"}) == "alice/foo-1[x=a%2Cb%5D]"
    assert label("alice/foo-1", {}) == "alice/foo-1"


def test_atoms_name_values_as_use_dependencies():
    a = Atom.parse(">=alice/foo-1[atom==app-misc/hello-1.0,use=french%20-english,empty=]")
    assert (a.key, a.op, str(a.version)) == ("alice/foo", ">=", "1")
    assert a.values == {"atom": "=app-misc/hello-1.0", "use": "french -english", "empty": ""}
    assert Atom.parse(str(a)) == a
    assert a.matches(JobuildId.parse("alice/foo-2"))  # values do not change what it matches


@pytest.mark.parametrize(("text", "error"), [
    ("alice/foo[", "written once, at the end"),
    ("alice/foo[]", "written once, at the end"),
    ("alice/foo[a=1]x", "written once, at the end"),
    ("alice/foo[a=1][b=2]", "written once, at the end"),
    ("alice/foo[A=1]", "is not name=value"),
    ("alice/foo[a]", "is not name=value"),
    ("alice/foo[a=1,a=2]", "parameter a is given twice"),
    ("alice/foo[a=%zz%ff]", "not valid percent-encoded UTF-8"),
])
@bad('atom', 'parameter values in an atom: {text!r}', 'AtomError: {error}')
def test_bad_values_in_atoms(text, error):
    with pytest.raises(AtomError, match=error):
        Atom.parse(text)


# -- patterns, in the sandbox -------------------------------------------------------------------------
def test_patterns_match_whole_values_in_the_sandbox():
    with MetadataDaemon(Limits(timeout=10, cpu=1)) as d:
        assert d.match("fast|slow", "fast") and not d.match("fast|slow", "xfast")
        assert not d.match("fast|slow", "fastslow")
        assert d.match("x|xy", "xy")  # leftmost-longest: all of the value
        assert d.match("(a)\\1", "aa") and not d.match("(a)\\1", "aaa")  # groups keep their numbers
        assert d.match(".*", "$(touch /tmp/x)\n'\"`")
        assert not d.match("[a-z]+", "abc\ndef")  # a newline is a character like any other


@pytest.mark.parametrize(("pattern", "value", "kind"), [
    ("a)|(b", "b", "invalid"),  # it would close an anchoring group: refused on its own
    ("[", "x", "invalid"),
    ("(((a{1,100}){1,100}){1,100}){1,100}", "a", "invalid"),  # too big to compile under the memory limit
    ("(.*)(.*)(.*)\\3\\2\\1z", "ab" * 300, "timeout"),  # back-references: bounded by the CPU limit
])
@bad('parameter', 'a pattern {pattern!r} matched against {value!r:.30}',
     'MetadataError {kind}; the sandbox lives on for the next request')
def test_hostile_patterns_cost_a_clear_error(pattern, value, kind):
    with MetadataDaemon(Limits(timeout=10, cpu=1)) as d:
        with pytest.raises(MetadataError) as e:
            d.match(pattern, value)
        assert e.value.kind == kind
        assert d.match("ok", "ok")  # the same daemon answers the next request


@bad('jobuild', 'a pattern parameter whose pattern does not compile, or whose default it refuses',
     'metadata error invalid, cached like any other')
def test_pattern_declarations_are_checked_when_read(reader):
    jid = JobuildId.parse("alice/pat-1")
    ok = reader.get(jid, b'DESCRIPTION=d\nPARAMETERS="mode:/fast|slow/=fast"\n')
    assert ok.declared == (Parameter("mode", "pattern", "fast|slow", "fast"),)
    for src, error in ((b'DESCRIPTION=d\nPARAMETERS="m:/[/"\n', "is not a valid extended regular expression"),
                       (b'DESCRIPTION=d\nPARAMETERS="m:/a|b/=c"\n', "its default 'c' does not match /a|b/")):
        with pytest.raises(MetadataError, match=error) as e:
            reader.get(jid, src)
        assert e.value.kind == "invalid"


# -- the depgraph ---------------------------------------------------------------------------------------
class FakeRepository:
    """What :func:`autotua.params.check_in_repository` asks of a repository (the real one is tested
    in tests/test_archtest.py against a real md5-cache)."""

    def describe(self):
        return "the test repository"

    def match(self, text):
        return [text.lstrip("=<>")] if "hello" in text else []

    def best(self, matched):
        return matched[-1]

    def iuse(self, cpv):
        return {"english", "french", "broken-test"}


def res(tw, root, trusted, reader, **kw):
    return resolve(DirTree(tw.root), root, trusted=trusted, reader=reader, **kw)


def test_root_values_are_bound_into_the_plan(tree_writer, trusted, reader):
    tree_writer.jobuild("alice/test-1", 'PARAMETERS="atom:atom use:use-flags= mode:/fast|slow/=fast"')
    r = res(tree_writer, "alice/test", trusted, reader,
            parameters={"atom": "=app-misc/hello-1.0", "use": "french -english"}, repository=FakeRepository())
    assert r.valid, r.errors
    assert r.plan[-1].parameters == {"atom": "=app-misc/hello-1.0", "use": "-english french", "mode": "fast"}
    # the same values written in the atom
    r2 = res(tree_writer, "alice/test[atom==app-misc/hello-1.0,use=-english%20french]", trusted, reader,
             repository=FakeRepository())
    assert r2.plan[-1].parameters == r.plan[-1].parameters
    # without a repository the atom and USE flags are not checked: said in a warning
    r3 = res(tree_writer, "alice/test", trusted, reader, parameters={"atom": "=app-misc/hello-1.0"})
    assert r3.valid and [(w.kind, w.message) for w in r3.warnings] == [
        ("parameter-unchecked", "alice/test-1: atom not checked against a Gentoo repository (the job is pinned "
                                "to no snapshot)")]


@bad('parameter', 'an atom value absent from the pinned snapshot', 'validation error naming the atom and the snapshot')
@bad('parameter', 'a USE flag not in the IUSE of the atom given', 'validation error listing the IUSE')
@bad('parameter', 'values both in the root atom and as parameters', 'validation error')
def test_values_refuted_by_the_repository(tree_writer, trusted, reader):
    tree_writer.jobuild("alice/test-1", 'PARAMETERS="atom:atom use:use-flags="')
    r = res(tree_writer, "alice/test", trusted, reader, parameters={"atom": "=app-misc/nothere-1"},
            repository=FakeRepository())
    assert [(e.kind, e.message) for e in r.errors] == [
        ("parameter", "alice/test-1: atom: =app-misc/nothere-1 matches no ebuild in the test repository")]
    r = res(tree_writer, "alice/test", trusted, reader, parameters={"atom": "=app-misc/hello-1.0", "use": "german"},
            repository=FakeRepository())
    assert [e.message for e in r.errors] == [
        "alice/test-1: use: USE flag german is not in the IUSE of app-misc/hello-1.0 (broken-test english french)"]
    r = res(tree_writer, "alice/test[atom==a/hello-1]", trusted, reader, parameters={"atom": "=a/hello-1"})
    assert [e.kind for e in r.errors] == ["parameter"] and not r.plan


def test_depend_and_sidepend_atoms_name_values(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/setup-1", 'PARAMETERS="mode:/fast|slow/"')
    tw.jobuild("alice/check-1", 'PARAMETERS="level:word=1"')
    tw.jobuild("alice/root-1", 'DEPEND="alice/setup[mode=slow]"\nSIDEPEND="alice/check[level=3] alice/check"')
    r = res(tw, "alice/root", trusted, reader)
    assert r.valid, r.errors
    assert [(e.jobuild, e.parameters) for e in r.plan] == [("alice/setup-1", {"mode": "slow"}),
                                                          ("alice/root-1", {})]
    three, default = r.sidepends
    assert (three.atom, three.parameters, default.atom, default.parameters) == (
        "alice/check[level=3]", {"level": "3"}, "alice/check", {"level": "1"})
    # the same jobuild with other values is other work: another identity, the same content digest
    assert three.digest == default.digest and three.identity != default.identity


@bad('parameter', 'a DEPEND naming a bad value, or none for a required parameter',
     'validation error naming the jobuild that needs it')
@bad('parameter', 'one jobuild needed twice in a plan with different values', 'validation error')
def test_bad_values_in_dependencies(tree_writer, trusted, reader):
    tw = tree_writer
    tw.jobuild("alice/setup-1", 'PARAMETERS="mode:/fast|slow/"')
    tw.jobuild("alice/a-1", 'DEPEND="alice/setup[mode=fast]"')
    tw.jobuild("alice/root-1", 'DEPEND="alice/a alice/setup[mode=slow]"')
    tw.jobuild("alice/bad-1", 'DEPEND="alice/setup[mode=medium]"\nSIDEPEND="alice/setup"')
    r = res(tw, "alice/root", trusted, reader)
    assert [(e.kind, e.jobuild) for e in r.errors] == [("parameter", "alice/setup-1")]
    assert "alice/root-1 needs alice/setup-1 with other parameter values" in r.errors[0].message
    r = res(tw, "alice/bad", trusted, reader)
    assert sorted(e.message for e in r.errors) == [
        "alice/setup-1: mode: 'medium' does not match /fast|slow/",
        "alice/setup-1: mode: a value is required (/fast|slow/)"]


# -- the phases ---------------------------------------------------------------------------------------
HOSTILE_VALUES = {
    "subst": "$(touch {canary})",
    "backticks": "`touch {canary}`",
    "quotes": "'\"; touch {canary}; echo \"'",
    "lines": "one\ntwo\n\nthree\n",
    "glob": "* ? [a-z] ~ {{a,b}}",
    "unicode": "Grüße 日本 \u202e",
    "dashes": "-n -e --help",
}


@pytest.mark.parametrize("name", HOSTILE_VALUES)
@bad('parameter', 'a value holding {name} reaching the phases',
     'inert data: the phase reads it byte for byte, runs nothing')
def test_phases_see_values_as_data(tmp_path, name):
    canary = tmp_path / "canary"
    value = HOSTILE_VALUES[name].format(canary=canary)
    env = environment({"note": value, "mode": "fast"})
    rc, out, records, host = run_phases(tmp_path / "run", """
DESCRIPTION=x
src_test() {
	printf '%s' "${PARAM_NOTE}" > "${T}/note"
	result mode "${PARAM_MODE}"
	[[ -n ${PARAM_NOTE} ]] || die "no value"
}
""", extra_env=env)
    assert rc == 0, out
    assert (host / "temp/note").read_bytes() == value.encode()
    assert keyed(records, "AUTOTUA_RESULT") == ["mode fast"]
    assert not canary.exists()


@bad('parameter', 'a value with NUL or a name that is no parameter, handed to the phases', 'ParameterError')
def test_what_never_reaches_a_phase():
    with pytest.raises(ParameterError, match="not a value a phase can be given"):
        environment({"note": "a\0b"})
    with pytest.raises(ParameterError, match="is not a parameter name"):
        environment({"LD_PRELOAD": "/x.so"})
    assert environment({"use": "x"}) == {"PARAM_USE": "x"}
