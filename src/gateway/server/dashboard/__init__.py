"""The dashboard at / on the admin port: three static files, no build step, no framework.

The page holds no data of its own: it asks for the admin token once (a form, or
``#token=…`` in the address, which it then removes), keeps it in the tab's
sessionStorage and reads /api/v1 with it; it never puts the token in a URL. A strict
Content-Security-Policy lets it load nothing but these files and talk to nothing but
this server.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

#: The page's own files and their types; served as read at start.
_FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
#: Nothing from elsewhere, no inline script or style, no form posting anywhere, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def add_dashboard(app: web.Application) -> None:
    """Serve the page at ``/`` and its script and style at ``/dashboard/<file>``."""
    here = resources.files(__name__)
    bodies = {name: (here / name).read_bytes() for name in _FILES}

    def serve(name: str) -> web.Response:
        return web.Response(
            body=bodies[name], content_type=_FILES[name], charset="utf-8", headers=_HEADERS
        )

    async def page(_request: web.Request) -> web.Response:
        return serve("index.html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in bodies or name == "index.html":
            raise web.HTTPNotFound()
        return serve(name)

    app.router.add_get("/", page)
    app.router.add_get("/dashboard/{name}", asset)
