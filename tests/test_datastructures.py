"""URL, Header, QueryParam, State and Address: client input never makes them fail."""

from __future__ import annotations

from typing import Any

import pytest

from lilya.datastructures import (
    URL,
    Address,
    Header,
    MutableHeader,
    QueryParam,
    State,
    URLPath,
    encode_headers,
)

# -- URL --------------------------------------------------------------------------


def test_url_is_a_str_subclass_exposing_every_part() -> None:
    url = URL("wss://ann:secret@example.com:8443/chat/room?x=1&y=2#frag")
    assert isinstance(url, str)
    assert url == "wss://ann:secret@example.com:8443/chat/room?x=1&y=2#frag"
    assert url.scheme == "wss"
    assert url.netloc == "ann:secret@example.com:8443"
    assert url.hostname == "example.com"
    assert url.port == 8443
    assert url.path == "/chat/room"
    assert url.query == "x=1&y=2"
    assert url.fragment == "frag"
    assert url.username == "ann"
    assert url.password == "secret"
    assert url.is_secure
    assert not URL("ws://example.com").is_secure


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (
            {
                "scheme": "ws",
                "server": ("testserver", 80),
                "path": "/123",
                "query_string": b"a=abc",
            },
            "ws://testserver/123?a=abc",
        ),
        ({"scheme": "wss", "server": ("example.com", 443), "path": "/"}, "wss://example.com/"),
        (
            {"scheme": "ws", "server": ("example.com", 8000), "path": "/a"},
            "ws://example.com:8000/a",
        ),
        ({"scheme": "http", "server": ("::1", 8000), "path": "/"}, "http://[::1]:8000/"),
        (
            {"scheme": "ws", "server": ("x", 80), "path": "/a", "headers": [(b"host", b"h.io:81")]},
            "ws://h.io:81/a",
        ),
        ({"type": "websocket", "path": "/only-path"}, "/only-path"),
        ({"type": "websocket", "server": ("h", 80), "path": "/p"}, "ws://h/p"),
        ({"type": "http", "server": ("h", 80), "path": "/p"}, "http://h/p"),
        (
            {"scheme": "ws", "server": ("h", 80), "root_path": "/api", "path": "/ws"},
            "ws://h/api/ws",
        ),
        (
            {"scheme": "ws", "server": ("h", 80), "root_path": "/api", "path": "/api/ws"},
            "ws://h/api/ws",
        ),
        ({"scheme": "ws", "server": ("h", "8000"), "path": "/"}, "ws://h:8000/"),
        ({"scheme": "ws", "server": ("h", None), "path": "/"}, "ws://h/"),
        ({"scheme": "ws", "server": ("h", 80), "path": "/a?b#c"}, "ws://h/a%3Fb%23c"),
    ],
)
def test_url_from_a_scope(scope: dict[str, Any], expected: str) -> None:
    assert URL(scope=scope) == expected
    assert URL.from_scope(scope) == expected


def test_url_from_a_scope_keeps_the_decoded_path_readable() -> None:
    url = URL(scope={"scheme": "ws", "server": ("h", 80), "path": "/a?b"})
    assert url.path == "/a%3Fb"
    assert url.query == ""


def test_url_refuses_both_a_string_and_a_scope_and_non_strings() -> None:
    with pytest.raises(TypeError, match="either"):
        URL("ws://x", scope={"path": "/"})
    with pytest.raises(TypeError, match="expects a str"):
        URL(b"ws://x")  # type: ignore[arg-type]


def test_url_with_a_bad_port_raises_value_error_on_access() -> None:
    url = URL("ws://example.com:99999/")
    with pytest.raises(ValueError):
        _ = url.port


def test_url_replace_changes_parts_and_rebuilds_the_netloc() -> None:
    url = URL("ws://ann:pw@example.com:8000/a?q=1")
    assert url.replace(scheme="wss") == "wss://ann:pw@example.com:8000/a?q=1"
    assert url.replace(path="/b", query="") == "ws://ann:pw@example.com:8000/b"
    assert url.replace(port=None) == "ws://ann:pw@example.com/a?q=1"
    assert url.replace(hostname="other.io") == "ws://ann:pw@other.io:8000/a?q=1"
    assert url.replace(username=None, password=None) == "ws://example.com:8000/a?q=1"
    assert url.replace(password=None) == "ws://ann@example.com:8000/a?q=1"
    assert URL("ws://h/").replace(hostname="::1") == "ws://[::1]/"
    assert isinstance(url.replace(path="/"), URL)
    with pytest.raises(TypeError, match="unknown parts: colour"):
        url.replace(colour="red")


def test_url_query_param_helpers() -> None:
    url = URL("ws://h/chat?room=a&room=b&nick=ann")
    assert (
        url.include_query_params(nick="bob", page=2) == "ws://h/chat?room=a&room=b&nick=bob&page=2"
    )
    assert url.replace_query_params(x=1) == "ws://h/chat?x=1"
    assert url.remove_query_params("room") == "ws://h/chat?nick=ann"
    assert url.remove_query_params(["room", "nick"]) == "ws://h/chat"


def test_url_repr_hides_the_password() -> None:
    assert repr(URL("ws://ann:secret@h/")) == "URL('ws://ann:********@h/')"
    assert repr(URL("ws://h/")) == "URL('ws://h/')"


def test_url_path_makes_absolute_urls_with_the_right_scheme() -> None:
    assert URLPath("/ws/a", "websocket").make_absolute_url("https://h/") == "wss://h/ws/a"
    assert URLPath("/ws/a", "websocket").make_absolute_url("http://h/api/") == "ws://h/api/ws/a"
    assert URLPath("/p", "http").make_absolute_url(URL("wss://h")) == "https://h/p"
    assert URLPath("/p").make_absolute_url("http://h") == "http://h/p"
    assert URLPath("/p", host="other.io").make_absolute_url("http://h") == "http://other.io/p"
    with pytest.raises(ValueError, match="protocol"):
        URLPath("/p", "ftp")


# -- headers -----------------------------------------------------------------------


def test_header_is_case_insensitive_and_multi_valued() -> None:
    headers = Header([(b"sec-websocket-version", b"13"), (b"x-a", b"1"), (b"x-a", b"2")])
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["x-a"] == "1"
    assert headers.getlist("X-A") == ["1", "2"]
    assert headers.getall("x-a") == ["1", "2"]
    assert headers.getlist("missing") == []
    assert headers.multi_items() == [("sec-websocket-version", "13"), ("x-a", "1"), ("x-a", "2")]
    assert dict(headers) == {"sec-websocket-version": "13", "x-a": "1"}
    assert "X-A" in headers
    assert headers.raw == [(b"sec-websocket-version", b"13"), (b"x-a", b"1"), (b"x-a", b"2")]


def test_header_decodes_non_utf8_bytes_as_latin1_instead_of_failing() -> None:
    headers = Header([(b"x-bin", b"\xff\xfe caf\xc3\xa9")])
    assert headers["x-bin"] == "\xff\xfe cafÃ©"
    assert headers.raw == [(b"x-bin", b"\xff\xfe caf\xc3\xa9")]


def test_header_is_read_only_and_mutable_header_is_not() -> None:
    headers = Header({"a": "1"})
    with pytest.raises(TypeError):
        headers["a"] = "2"  # type: ignore[index]
    mutable = headers.mutablecopy()
    mutable["a"] = "2"
    mutable.add("set-cookie", "x=1")
    assert isinstance(mutable, MutableHeader)
    assert mutable.multi_items() == [("a", "2"), ("set-cookie", "x=1")]
    assert headers["a"] == "1"


def test_header_from_a_scope_without_headers_is_empty() -> None:
    assert len(Header.from_scope({"type": "websocket"})) == 0
    assert len(Header()) == 0


def test_encode_headers_accepts_pairs_and_mappings_and_lowercases_names() -> None:
    assert encode_headers({"X-A": "é"}) == [(b"x-a", b"\xe9")]
    assert encode_headers([(b"X-B", b"1")]) == [(b"x-b", b"1")]
    assert encode_headers(None) == []
    with pytest.raises(UnicodeEncodeError):
        encode_headers({"x": "😀"})
    with pytest.raises(TypeError, match="pair"):
        encode_headers(["x"])  # type: ignore[arg-type]  # the bad input under test


# -- query parameters -----------------------------------------------------------------


def test_query_params_keep_blank_values_and_repeat_names() -> None:
    params = QueryParam(b"a=&b=1&b=2&c")
    assert params["a"] == ""
    assert params["c"] == ""
    assert params.getlist("b") == ["1", "2"]
    assert params.getall("b") == ["1", "2"]
    assert params.getlist("z") == []
    assert dict(params) == {"a": "", "b": "1", "c": ""}
    assert params.multi_items() == [("a", ""), ("b", "1"), ("b", "2"), ("c", "")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"q=%zz", {"q": "%zz"}),
        (b"q=%ff", {"q": "\ufffd"}),
        (b"q=\xff\xfe", {"q": "\ufffd\ufffd"}),
        (b"&&=&", {"": ""}),
        (b"q=a+b&r=%20", {"q": "a b", "r": " "}),
        (b"q=caf%C3%A9", {"q": "café"}),
    ],
)
def test_malformed_query_strings_never_raise(raw: bytes, expected: dict[str, str]) -> None:
    params = QueryParam(raw)
    assert {k: params[k] for k in params} == expected


def test_query_params_from_str_mapping_and_pairs_and_back_to_str() -> None:
    assert str(QueryParam("a=1&b=x%20y")) == "a=1&b=x+y"
    assert dict(QueryParam({"a": 1})) == {"a": "1"}
    assert QueryParam([("a", "1"), ("a", "2")]).getlist("a") == ["1", "2"]
    assert len(QueryParam()) == 0
    with pytest.raises(TypeError):
        QueryParam("a=1")["a"] = "2"  # type: ignore[index]


# -- state and addresses ----------------------------------------------------------------


def test_state_is_attribute_access_over_a_shared_dict() -> None:
    backing: dict[str, Any] = {"db": 1}
    state = State(backing)
    assert state.db == 1
    state.cache = "c"
    assert backing == {"db": 1, "cache": "c"}
    assert "cache" in state
    assert sorted(state) == ["cache", "db"]
    assert len(state) == 2
    del state.cache
    assert "cache" not in backing
    assert state == State({"db": 1})
    assert state != {"db": 1}
    assert state.copy() == state
    assert repr(state) == "State({'db': 1})"
    assert len(State()) == 0


def test_state_says_how_to_fix_a_missing_attribute() -> None:
    state = State()
    with pytest.raises(AttributeError, match="set it first"):
        _ = state.missing
    with pytest.raises(AttributeError, match="missing"):
        del state.missing


def test_address_from_a_scope_value_casts_string_ports() -> None:
    assert Address.from_scope(("1.2.3.4", "80")) == Address("1.2.3.4", 80)
    assert Address.from_scope(("sock",)) == Address("sock", None)
    assert Address.from_scope(None) is None
    address = Address.from_scope(["h", 1])
    assert address is not None
    assert (address.host, address.port) == ("h", 1)


def test_cookie_parsing_is_lenient_like_browsers() -> None:
    from lilya._connection import parse_cookie

    assert parse_cookie('a=1; b="q"; lone; c=x=y; ;') == {
        "a": "1",
        "b": "q",
        "": "lone",
        "c": "x=y",
    }
    assert parse_cookie("") == {}


@pytest.mark.parametrize("host", [b"[::1", b"h:abc", b"h:99999", b"ex ample", b"a/b"])
def test_a_malformed_host_header_falls_back_to_the_server_address(host: bytes) -> None:
    scope = {"type": "websocket", "scheme": "ws", "server": ("srv", 8000), "path": "/p"}
    url = URL(scope={**scope, "headers": [(b"host", host)]})
    assert url == "ws://srv:8000/p"
    assert (url.hostname, url.port, url.path) == ("srv", 8000, "/p")


def test_header_names_are_lower_cased_whatever_the_caller_wrote() -> None:
    mixed: Any = [(b"Host", b"a"), ("X-Custom", "b")]  # bytes and str pairs in one list
    assert dict(Header(mixed)) == {"host": "a", "x-custom": "b"}
    assert MutableHeader({"Content-Type": "x"}).multi_items() == [("content-type", "x")]


@pytest.mark.parametrize("bad", [[(b"a",)], [b"ab"], [(1, b"x")]])
def test_header_built_from_malformed_items_says_what_is_wrong(bad: Any) -> None:
    with pytest.raises(TypeError, match=r"(?i)header"):
        Header(bad)


def test_the_url_finds_the_host_header_among_others() -> None:
    scope = {
        "type": "http",
        "scheme": "http",
        "server": ("10.0.0.1", 80),
        "path": "/p",
        "headers": [(b"accept", b"*/*"), (b"host", b"example.org:8080")],
    }
    assert URL(scope=scope) == "http://example.org:8080/p"
