"""A server extension of the students' servers: ``/lab`` opens Notebook 7's file browser.

The servers run without JupyterLab's own server extension (``jupyterlab``): importing it runs
``node yarn.js config`` at every server start (``jupyterlab.labapp`` asks for the version of
the app, which asks yarn for its registry) and cost about 0.6 of a login's CPU seconds
(bench/login_cpu.py, bench/load_test.py), for a UI the course does not use. Notebook 7 still
answers ``/lab`` (jupyterlab_server's page handler) but, without JupyterLab's templates, with an
error 500; Notebook 7's own "Open JupyterLab" leads there. This extension answers ``/lab`` and
``/lab/tree/<path>`` with a redirect to ``/tree/<path>`` instead. Notebook 7's settings, themes
and translations (``/lab/api/...``) are untouched: they are jupyterlab_server's, served by
Notebook 7 itself.

Enabled on the command line of the servers (``Spawner.args`` in ``jupyterhub_config.py``); its
handlers come before Notebook 7's because extensions load in the order of their names.
"""
from jupyter_server.utils import url_path_join
from tornado import web

#: The name to enable in ``ServerApp.jpserver_extensions``.
EXTENSION = __name__


class LabToTreeHandler(web.RequestHandler):
    """Redirect ``/lab`` and ``/lab/tree/<path>`` to Notebook 7's ``/tree/<path>``."""

    def initialize(self, base_url):
        self.base_url = base_url

    def get(self, path=""):
        query = f"?{self.request.query}" if self.request.query else ""
        self.redirect(url_path_join(self.base_url, "tree", path) + query)


def _jupyter_server_extension_points():
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp):
    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(base_url, r"/lab/?"), LabToTreeHandler, {"base_url": base_url}),
        (url_path_join(base_url, r"/lab/tree/(.*)"), LabToTreeHandler, {"base_url": base_url}),
    ])
    serverapp.log.info("%s: /lab opens Notebook 7's /tree", EXTENSION)
