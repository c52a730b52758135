"""The jobtage tree: the bzr branch the master owns, its maintainers, and the revisions jobs pin."""
