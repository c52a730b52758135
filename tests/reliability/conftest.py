"""The reliability tests' report: each fault-matrix cell and the load test record what they found,
and ``docs/reliability.md`` is rewritten from it when the session ends, under ``make docs``
(tests.support.reliability)."""

from __future__ import annotations

import os

import pytest

from tests.support.reliability import Report


@pytest.fixture(scope="session")
def reliability():
    report = Report()
    yield report
    written = report.write()
    if (report.cells or report.load_lines) and not written and not os.environ.get("AUTOTUA_WRITE_DOCS"):
        print("\ndocs/reliability.md: left as it was (`make docs` rewrites it from these tests)")
    elif report.cells and "matrix" not in written:
        missing = [c for c in report.expected if c not in report.cells]
        print(f"\ndocs/reliability.md: the matrix table was left as it was ({len(missing)} cells did not run)")
    for name in written:
        print(f"\ndocs/reliability.md: the {name} section was rewritten")
