"""``LilyaJS``: lilya.js served from the package with its type and caching headers."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from lilya.apps import Lilya
from lilya.browser import LilyaJS, lilya_js
from lilya.exceptions import ImproperlyConfigured
from lilya.testclient import TestClient
from tests.support.servers import serve


@pytest.fixture
def client() -> TestClient:
    return TestClient(Lilya(routes=[LilyaJS("/lilya.js"), LilyaJS("/cached.js", max_age=600)]))


def test_the_module_is_served_as_javascript_with_an_etag_and_no_cache(client: TestClient) -> None:
    response = client.get("/lilya.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == lilya_js()
    digest = hashlib.sha256(response.content).hexdigest()[:32]
    assert response.headers["etag"] == f'"{digest}"'
    assert b"export function connect(" in response.content


@pytest.mark.parametrize("tag", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_a_browser_holding_the_same_file_gets_an_empty_304(client: TestClient, tag: str) -> None:
    etag = client.get("/lilya.js").headers["etag"]
    response = client.get("/lilya.js", headers={"if-none-match": tag.format(etag=etag)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert "content-length" not in response.headers


def test_a_browser_holding_another_version_gets_the_file(client: TestClient) -> None:
    response = client.get("/lilya.js", headers={"if-none-match": '"old-version"'})
    assert response.status_code == 200
    assert response.content == lilya_js()


def test_max_age_lets_browsers_keep_their_copy(client: TestClient) -> None:
    assert client.get("/cached.js").headers["cache-control"] == "public, max-age=600"


def test_only_get_and_head_are_allowed(client: TestClient) -> None:
    assert client.post("/lilya.js").status_code == 405
    assert client.head("/lilya.js").status_code == 200


def test_the_route_has_a_name_and_a_default_path() -> None:
    route = LilyaJS()
    assert (route.path, route.name) == ("/lilya.js", "lilya_js")
    app = Lilya(routes=[LilyaJS("/static/lilya.js", name="js")])
    assert app.router.url_path_for("js") == "/static/lilya.js"


@pytest.mark.parametrize("max_age", [-1, 1.5, "60", True, None])
def test_a_max_age_that_is_not_seconds_is_refused_at_construction(max_age: object) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"LilyaJS\(max_age=.*int >= 0"):
        LilyaJS(max_age=max_age)  # type: ignore[arg-type]  # the wrong type is the test


def test_the_file_ships_inside_the_package() -> None:
    assert resources.files("lilya").joinpath("static/lilya.js").is_file()


@pytest.mark.server
def test_a_real_server_serves_it() -> None:
    import httpx

    with serve("tests.support.browser_apps:js_app") as server:
        response = httpx.get(f"http://127.0.0.1:{server.port}/lilya.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.content == lilya_js()
