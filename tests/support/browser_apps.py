"""Apps that the browser-client tests serve in a real server process."""

from __future__ import annotations

from lilya.apps import Lilya
from lilya.browser import LilyaJS

__all__ = ["js_app"]

#: Only lilya.js, as a page's app would serve it.
js_app = Lilya(routes=[LilyaJS("/lilya.js")])
