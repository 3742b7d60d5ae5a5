"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""
from werkzeug.middleware.proxy_fix import ProxyFix

from etl_console.serving import web_process_app

app = web_process_app()  # create_app, a schema check, and a runner thread only if ETL_RUNNER=thread
# Exactly one proxy (nginx) sits in front: trust one hop of X-Forwarded-* headers.
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
