"""Helpers the test suites and benchmarks share: a throw-away PostgreSQL cluster and a live master."""
