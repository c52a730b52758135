"""Hostile jobuilds in the depend phase, beyond tests/test_metadata.py: attacks on the bridge itself
(exec, traps, killing the sandbox, redefining or disabling the builtins it prints with, shell options,
raising limits), bodies bash cannot hold (NUL bytes), huge output and huge values. Each costs one
clear error for that jobuild, or is read exactly as a harmless one would be; afterwards the next
jobuild reads as if nothing happened, and nothing outside the sandbox changed.
"""

from __future__ import annotations

import hashlib

import pytest

from autotua.atom import JobuildId
from autotua.cache import DigestCache
from autotua.metadata import Limits, MetadataError, MetadataReader, Templates

bad = pytest.mark.bad_input
J = JobuildId.parse("alice/foo-1.2")

#: (jobuild source, the error kind or None when it reads fine, text in the error or the DESCRIPTION read)
CASES = {
    "exec replacing the bridge's bash": (b"DESCRIPTION=x\nexec /bin/bash -c 'echo DESCRIPTION=forged'",
                                         "invalid", "DESCRIPTION is empty"),
    "a trap on EXIT printing forged records": (b"DESCRIPTION=x\ntrap 'echo DESCRIPTION=forged; echo DEPEND=evil' EXIT",
                                               None, "x"),
    "kill -9 0 (the whole sandbox)": (b"DESCRIPTION=x\nkill -9 0", "source-failed", "exit status 137"),
    "kill -9 of the bridge's bash ($PPID)": (b"DESCRIPTION=x\nkill -9 $PPID", "source-failed", "exit status 137"),
    "declare and printf redefined as functions": (b"DESCRIPTION=x\ndeclare() { echo hijack; }\nprintf() { :; }",
                                                  "invalid", "DESCRIPTION is empty"),
    "enable -n of the builtins the bridge prints with": (b"DESCRIPTION=x\nenable -n echo printf declare",
                                                          "timeout", "longer than"),
    "ulimit raising its own limits": (b"DESCRIPTION=x\nulimit -t unlimited", "source-failed",
                                      "cannot modify limit"),
    "200 MB printed at global scope": (b"DESCRIPTION=x\nprintf '%*s' 200000000 x", None, "x"),
    "a 50 MB value": (b"printf -v DESCRIPTION '%*s' 50000000 x", "source-failed", "cannot allocate"),
    "NUL bytes in the jobuild": (b"DESCRIPTION=x\x00\nDEPEND=alice/evil", "invalid", "holds a NUL byte at offset 13"),
    "set -euo pipefail and IFS changed at global scope": (b"set -euo pipefail; IFS=z; DESCRIPTION=x", None, "x"),
    "endless recursion": (b"DESCRIPTION=x\nf() { f; }; f", "timeout", ""),
    "writing outside the sandbox (/tmp)": (b"DESCRIPTION=x\necho hi > /tmp/owned", "source-failed",
                                           "No such file or directory"),
    "50,000 variables": (b"DESCRIPTION=x\n" + b"".join(b"V%d=1\n" % i for i in range(50000)), None, "x"),
    "reading its own environment (/proc)": (b"DESCRIPTION=x\nread -r e < /proc/self/environ", "source-failed",
                                            "No such file or directory"),
}


@pytest.fixture(scope="module")
def reader():
    # the CPU limit ends runaway work; the wall clock only what waits (a busy machine's 2 CPU seconds
    # can take longer than 3 s of wall time, which made "a 50 MB value" a timeout under load)
    with MetadataReader(DigestCache(), Limits(timeout=8, cpu=2)) as r:
        yield r


@bad("jobuild", "in the depend phase: {case}", "one clear error (or the values a harmless jobuild would give)")
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_depend_phase(reader, case, tmp_path):
    src, kind, text = CASES[case]
    canary = tmp_path / "canary"
    canary.write_text("alive")
    if kind is None:
        md = reader.get(J, src)
        assert md.description == text
        assert md.depend == "" and md.sidepend == ""
    else:
        with pytest.raises(MetadataError) as e:
            reader.get(J, src)
        assert e.value.kind == kind, e.value
        assert text in str(e.value)
        assert str(J) in str(e.value)
    # nothing else changed: the next jobuild reads as ever, the host's file is untouched
    after = "after-" + hashlib.sha256(case.encode()).hexdigest()[:12]  # unique: never answered from the cache
    assert reader.get(J, f"DESCRIPTION={after}".encode()).description == after
    assert canary.read_text() == "alive"


@bad("jobuild", "a template holding a NUL byte", "template-unverified: it holds a NUL byte")
def test_template_with_a_nul_byte(reader):
    t = Templates(sources={"alice/bad": b"X=1\x00\nDEPEND=evil"})
    with pytest.raises(MetadataError) as e:
        reader.get(J, b"inherit alice/bad\nDESCRIPTION=x", t)
    assert e.value.kind == "template-unverified" and "NUL byte" in str(e.value)
    good = Templates(sources={"alice/good": b"X=1\n"})
    assert reader.get(J, b"inherit alice/good\nDESCRIPTION=ok", good).inherited == ("alice/good",)
