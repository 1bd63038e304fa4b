"""lilya.js, the browser client of the channels protocol, served by one route.

``lilya/static/lilya.js`` ships inside the package (one ES module, no
dependencies; ``docs/lilya-js.md``), so a page never needs a CDN or a build
step::

    app = Lilya(routes=[LilyaJS("/lilya.js"), ...])

and in the page ``import { connect } from "/lilya.js"``.

Caching: the response carries a strong ``ETag`` (a hash of the file) and, by
default, ``cache-control: no-cache``: the browser keeps its copy but asks each
time, and gets an empty ``304`` while the file is unchanged, so an upgrade of
lilya reaches every page at its next load. Pass ``max_age`` to let browsers use
their copy without asking for that many seconds.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from lilya.exceptions import ImproperlyConfigured
from lilya.requests import Request
from lilya.responses import Response
from lilya.routing import Path

__all__ = ["LilyaJS", "lilya_js"]

#: RFC 9239: JavaScript is ``text/javascript``; a module script needs a JavaScript MIME type.
MEDIA_TYPE = "text/javascript"


def lilya_js() -> bytes:
    """Return the source of ``lilya.js`` shipped in this lilya (for bundlers or your own route)."""
    return resources.files("lilya").joinpath("static/lilya.js").read_bytes()


def _matches(if_none_match: str, etag: str) -> bool:
    # RFC 9110 §13.1.2: a list of entity tags or "*", compared weakly for GET.
    tags = {tag.strip() for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags or f"W/{etag}" in tags


class LilyaJS(Path):
    """A ``GET`` route that serves ``lilya.js`` with its content type and caching headers.

    Args:
        path: where the page imports it from, e.g. ``"/lilya.js"``.
        name: the route's name, for ``url_path_for``.
        max_age: seconds a browser may use its copy without asking again; the
            default ``0`` means it revalidates each time (``no-cache``; cheap:
            ``304`` with no body while the file is unchanged).

    Raises:
        ImproperlyConfigured: ``max_age`` is not a non-negative int.
    """

    def __init__(
        self, path: str = "/lilya.js", *, name: str = "lilya_js", max_age: int = 0
    ) -> None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ImproperlyConfigured(
                f"LilyaJS(max_age={max_age!r}): give the seconds browsers may cache "
                "lilya.js as an int >= 0 (0: revalidate on every load)."
            )
        self.source = lilya_js()
        self.etag = '"' + hashlib.sha256(self.source).hexdigest()[:32] + '"'
        cache = "no-cache" if max_age == 0 else f"public, max-age={max_age}"
        self.response_headers = {
            "etag": self.etag,
            "cache-control": cache,
            "x-content-type-options": "nosniff",
        }

        async def serve(request: Request) -> Response:
            if _matches(request.headers.get("if-none-match", ""), self.etag):
                return Response(status_code=304, headers=self.response_headers)
            return Response(self.source, headers=self.response_headers, media_type=MEDIA_TYPE)

        super().__init__(path, serve, methods=["GET"], name=name)
