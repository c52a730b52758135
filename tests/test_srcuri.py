import pytest

from autotua.srcuri import Distfile, Mirrors, SrcUriError, parse_src_uri


def test_parse():
    got = parse_src_uri(
        "https://example.org/a-1.tar.gz mirror://samples/dir/b.tar.xz -> b-renamed.tar.xz\n"
        "  ftp://host/c%2Bd.zip"
    )
    assert got == [
        Distfile("https://example.org/a-1.tar.gz", "a-1.tar.gz"),
        Distfile("mirror://samples/dir/b.tar.xz", "b-renamed.tar.xz"),
        Distfile("ftp://host/c%2Bd.zip", "c+d.zip"),
    ]
    assert parse_src_uri("") == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("-> x", "must follow a URL"),
        ("https://e.org/a ->", "needs a file name"),
        ("file:///etc/passwd", "not a URL"),
        ("a.tar.gz", "not a URL"),
        ("https://e.org/dir/", "names no file"),
        ("https://e.org/a -> ../evil", "not a usable file name"),
        ("https://e.org/a -> sub/x", "not a usable file name"),
        ("https://e.org/a -> .hidden", "not a usable file name"),
        ("https://e.org/a https://f.org/a", "used twice"),
    ],
)
@pytest.mark.bad_input('manifest', 'the PORTCONF_URI {text!r}', 'SrcUriError: {why}')
def test_errors(text, why):
    with pytest.raises(SrcUriError, match=why):
        parse_src_uri(text, "PORTCONF_URI")


def test_mirrors():
    m = Mirrors.parse("# comment\nsamples http://127.0.0.1:8000/d/ http://backup/d\nother  https://x\n")
    assert m.resolve("mirror://samples/sub/a.tar.gz") == [
        "http://127.0.0.1:8000/d/sub/a.tar.gz", "http://backup/d/sub/a.tar.gz"]
    assert m.resolve("https://example.org/x") == ["https://example.org/x"]
    with pytest.raises(SrcUriError, match="no mirror named 'nope'"):
        m.resolve("mirror://nope/x")
    with pytest.raises(SrcUriError, match="line 1"):
        Mirrors.parse("lonely")
    assert Mirrors.load(None).mapping == {}
