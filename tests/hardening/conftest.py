"""Fixtures for the hardening tests: the master's (tests/master/conftest.py), the web UI's
(tests/web/conftest.py) and the slave's (tests/slave/conftest.py), shared by name; the session-wide
ones (keys, the sample tree, the release key and stage3, PostgreSQL, live masters) come from
tests/conftest.py."""

from tests.master import conftest as master_conftest
from tests.slave import conftest as slave_conftest
from tests.web import conftest as web_conftest

master_settings = master_conftest.master_settings
maintainers = master_conftest.maintainers
master = master_conftest.master
make_branch = master_conftest.make_branch
people = web_conftest.people
web = web_conftest.web
mirror = slave_conftest.mirror
