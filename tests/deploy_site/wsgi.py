"""The WSGI side of the deployment tests' site (served by uwsgi or gunicorn's sync workers)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.deploy_site.settings")
application = get_wsgi_application()
