"""Fixtures for the hardening tests: the master's (tests/master/conftest.py), the web UI's
(tests/web/conftest.py) and the slave's (tests/slave/conftest.py), shared by name."""

from tests.master import conftest as master_conftest
from tests.slave import conftest as slave_conftest
from tests.web import conftest as web_conftest

master_cache = master_conftest.master_cache
master_settings = master_conftest.master_settings
maintainers = master_conftest.maintainers
master = master_conftest.master
live_master = master_conftest.live_master
postgres = master_conftest.postgres
make_branch = master_conftest.make_branch
people = web_conftest.people
web = web_conftest.web
release_key = slave_conftest.release_key
stage3 = slave_conftest.stage3
mirror = slave_conftest.mirror
