"""The web UI for people (issue 7). Empty for now: its URLs are mounted at the site root."""
