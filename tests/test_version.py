import pytest

from autotua.version import Version, VersionError


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1", "2"),
        ("1.9", "1.10"),  # numeric, not lexical
        ("1.0", "1.0.0"),  # trailing zeros are significant, as in portage
        ("1.0.0", "1.0.1"),
        ("2.0.13", "2.1"),
        ("0", "0.0"),
        ("9.99", "10"),
    ],
)
def test_order(low, high):
    assert Version(low) < Version(high)
    assert Version(high) > Version(low)
    assert Version(low) != Version(high)


def test_equal_and_hash():
    assert Version("1.2") == Version("1.2")
    assert hash(Version("1.2")) == hash(Version("1.2"))
    assert len({Version("1.0"), Version("1.0.0"), Version("1.0")}) == 2
    assert str(Version("4.1")) == "4.1"
    assert sorted(map(Version, ["1.10", "1.9", "1.0.0", "1.0", "1"])) == list(
        map(Version, ["1", "1.0", "1.0.0", "1.9", "1.10"])
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("1..2", "empty component"),
        (".1", "empty component"),
        ("1.", "empty component"),
        ("1.a", "not a number"),
        ("1_rc1", "not a number"),
        ("1.05", "leading zero"),
        ("01", "leading zero"),
        ("-1", "not a number"),
        ("\uff11", "not a number"),  # a full-width digit is not ASCII
    ],
)
@pytest.mark.bad_input('atom', 'the version {text!r}', 'VersionError: {why}')
def test_invalid(text, why):
    with pytest.raises(VersionError) as e:
        Version(text)
    assert repr(text) in str(e.value)
    assert why in str(e.value)
