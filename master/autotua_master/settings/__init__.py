"""Settings: the defaults of :mod:`.base`, then what the environment says (:mod:`.env`).

One module for every site: a try-out needs no configuration at all (SQLite and data in the
checkout's ``var/``), a real site sets ``AUTOTUA_*`` variables (see docs/master.md).
"""

from .base import *  # noqa: F403
from .env import *  # noqa: F403
