"""Django's PostgreSQL backend with a health check that costs no round trip, and prepared hot statements
(``base.DatabaseWrapper``)."""
