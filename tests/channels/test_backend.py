"""The public backend contract: building backends by scheme, and missing extras."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from lilya.channels import Backend, BackendSettings, Channels, register_backend
from lilya.channels import backend as backend_module
from lilya.channels.memory import MemoryBackend
from lilya.exceptions import ImproperlyConfigured


@pytest.fixture
def registry() -> Iterator[None]:
    saved = dict(backend_module._REGISTERED)
    yield
    backend_module._REGISTERED.clear()
    backend_module._REGISTERED.update(saved)


def test_an_unknown_url_scheme_is_refused_with_the_schemes_there_are() -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        Channels("kafka://localhost")
    message = str(caught.value)
    assert "Unsupported channels URL scheme 'kafka'" in message
    for scheme in (
        "memory",
        "postgres",
        "postgresql",
        "redis",
        "rediss",
        "redis+cluster",
        "redis+sentinel",
    ):
        assert f"{scheme}://" in message
    assert "register_backend()" in message


@pytest.mark.usefixtures("registry")
def test_a_registered_scheme_builds_its_backend_with_the_channels_settings() -> None:
    made: list[tuple[str, BackendSettings]] = []

    def factory(url: str, settings: BackendSettings) -> Backend:
        made.append((url, settings))
        return MemoryBackend("memory://", settings)

    register_backend("My-Store+tls", factory)
    channels = Channels("my-store+tls://db:1", history_size=7, key_prefix="app")
    assert made == [("my-store+tls://db:1", BackendSettings(7, None, "app", (0.05, 2.0)))]
    assert repr(channels) == "<Channels memory:// disconnected>"


@pytest.mark.parametrize("scheme", ["", "1db", "my store", "é", None, "a/b"])
def test_register_backend_refuses_what_is_not_a_url_scheme(scheme: object) -> None:
    with pytest.raises(ValueError, match="A backend scheme is letters, digits"):
        register_backend(scheme, MemoryBackend)  # type: ignore[arg-type]


def test_register_backend_refuses_a_factory_that_cannot_be_called() -> None:
    with pytest.raises(TypeError, match="factory must be callable"):
        register_backend("mine", "MemoryBackend")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "client", "extra"),
    [
        ("redis://127.0.0.1:6379/0", "redis", "redis"),
        ("rediss://127.0.0.1:6380/0", "redis", "redis"),
    ],
)
def test_a_url_whose_client_library_is_missing_names_the_pip_install_line(
    monkeypatch: pytest.MonkeyPatch, url: str, client: str, extra: str
) -> None:
    # A None entry in sys.modules makes "import redis" fail as if it were not
    # installed; the backend module is dropped so that it is imported anew.
    for name in list(sys.modules):
        if name == client or name.startswith(f"{client}.") or name == f"lilya.channels.{extra}":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, client, None)
    with pytest.raises(ImproperlyConfigured) as caught:
        Channels(url)
    assert str(caught.value).endswith(f'pip install "lilya[{extra}]"')
    assert f"need the {client!r} client library" in str(caught.value)


def test_a_missing_module_that_is_not_the_client_is_not_blamed_on_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "lilya.channels.redis", raising=False)
    monkeypatch.setitem(sys.modules, "lilya._json", None)
    with pytest.raises(ModuleNotFoundError):
        Channels("redis://127.0.0.1:6379/0")
