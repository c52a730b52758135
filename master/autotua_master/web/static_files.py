"""The site's CSS and JS served by the master itself (WhiteNoise), collected or not.

A checkout serves them straight from the apps' ``static/`` directories; a site that ran
``collectstatic`` serves ``STATIC_ROOT`` too (or lets its reverse proxy do it). A missing STATIC_ROOT
is the normal case here, not something to warn about on every start.
"""

from __future__ import annotations

import os

from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    def add_files(self, root, prefix=None):
        if root and os.path.isdir(root):
            super().add_files(root, prefix)
