"""Jobs: a root atom pinned to one tree revision, validated, queued, run by slaves, with results."""
