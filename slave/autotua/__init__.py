"""AutotuA: run Gentoo maintainers' signed jobuilds in job containers on volunteer machines.

This package holds the jobuild core that the master and the slave share (versions, atoms, the tree
reader, Manifests, signatures, metadata, the depgraph and the ``jobuild.sh`` bridge) and the slave.
"""

__version__ = "0.1.0"


class AutotuaError(Exception):
    """Base of every error AutotuA reports to a person: its message is meant to be read as it is."""
