"""tests.support.ceiling through Django's ASGI handler (gunicorn ``--worker-class asgi``)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.ceiling")
application = get_asgi_application()
