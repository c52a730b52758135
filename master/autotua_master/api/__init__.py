"""The REST API under /api/v1/: the slave protocol (docs/protocol.md) and the maintainers' jobs."""
