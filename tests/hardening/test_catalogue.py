"""The catalogue of bad inputs in docs/security.md, collected from the suite's bad_input markers."""

from __future__ import annotations

import re

from tests.hardening.catalogue import collect, render
from tests.hardening.docs import write_section

PLACEHOLDER = re.compile(r"\{[a-z_]+(![rs])?\}")
#: what issue 8 asks for, across the system
AT_LEAST = 50


def test_the_catalogue_is_complete_and_documented():
    entries = collect()
    areas = {e["area"] for e in entries}
    assert len(entries) >= AT_LEAST, len(entries)
    # every kind the issue names has entries
    assert {"tarball", "signature", "stage3", "manifest", "atom", "jobuild", "api", "protocol"} <= areas, areas
    for e in entries:
        assert e["what"] and e["error"] and e["tests"], e
        assert not PLACEHOLDER.search(e["what"] + e["error"]), f"an unformatted placeholder: {e}"
    write_section("catalogue", render(entries))
