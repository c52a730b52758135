"""The WSGI application, for gunicorn: ``gunicorn autotua_master.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autotua_master.settings")
application = get_wsgi_application()
