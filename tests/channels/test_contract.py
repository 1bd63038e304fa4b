"""The backend contract kit (lilya.channels.testing), run on memory:// and redis://."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lilya.channels.testing import CHECKS, BackendContract, ContractFailure, run_contract
from tests.channels.postgres_server import delete_rows
from tests.channels.redis_cluster import delete_cluster_keys, delete_sentinel_keys
from tests.channels.redis_server import delete_keys


class TestMemoryBackend(BackendContract):
    """memory:// under asyncio and trio: a named store, shared like a server."""

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def channels_url(self) -> str:
        return f"memory://contract-{uuid.uuid4().hex}"


@pytest.mark.redis
class TestRedisBackend(BackendContract):
    """redis:// under asyncio (redis-py's async client runs on asyncio only)."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def channels_url(self, redis_url: str) -> str:
        return redis_url

    def cleanup(self, url: str, key_prefix: str) -> None:
        delete_keys(url, key_prefix)


@pytest.mark.redis
class TestRedisClusterBackend(BackendContract):
    """redis+cluster:// on a private cluster of three masters and three replicas."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def channels_url(self, redis_cluster_url: str) -> str:
        return redis_cluster_url

    def cleanup(self, url: str, key_prefix: str) -> None:
        delete_cluster_keys(url, key_prefix)


@pytest.mark.redis
class TestRedisSentinelBackend(BackendContract):
    """redis+sentinel:// on a private master, replica and three sentinels."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def channels_url(self, redis_sentinel_url: str) -> str:
        return redis_sentinel_url

    def cleanup(self, url: str, key_prefix: str) -> None:
        delete_sentinel_keys(url, key_prefix)


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_run_contract_runs_the_checks_it_is_given_without_pytest_runner() -> None:
    names = ["offsets_count_per_channel", "history_size_zero_keeps_nothing_but_counts"]
    assert await run_contract(f"memory://kit-{uuid.uuid4().hex}", only=names) == names


async def test_run_contract_names_every_check_a_broken_backend_fails() -> None:
    # history_size=0 makes deduplication impossible (the window is empty):
    # the report names the checks that failed, with a traceback, and not the others.
    names = ["a_retry_with_the_same_message_id_is_delivered_once", "offsets_count_per_channel"]
    with pytest.raises(ContractFailure) as caught:
        await run_contract("memory://", only=names, history_size=0)
    assert list(caught.value.failures) == ["a_retry_with_the_same_message_id_is_delivered_once"]
    assert "1 of the backend contract's checks failed on memory://" in str(caught.value)
    assert "AssertionError" in str(caught.value)


async def test_run_contract_refuses_a_check_name_it_does_not_have() -> None:
    with pytest.raises(KeyError, match="No contract check named 'nope'"):
        await run_contract("memory://", only=["nope"])


def test_every_hostile_row_and_case_is_a_check_of_its_own() -> None:
    hostile = [name for name in CHECKS if name.startswith("hostile_arguments")]
    assert len(hostile) == 47
    assert "a_dropping_policy_tells_the_stalled_subscriber_which_offsets_it_lost[drop_oldest]" in (
        CHECKS
    )


class _NoUrl(BackendContract):
    pass


class _WithUrl(BackendContract):
    url = "memory://by-attribute"


def test_a_contract_subclass_can_name_its_url_as_a_class_attribute() -> None:
    fixture: Any = _WithUrl.channels_url
    assert fixture.__wrapped__(_WithUrl()) == "memory://by-attribute"


def test_a_contract_subclass_without_a_url_says_what_to_set() -> None:
    fixture: Any = _NoUrl.channels_url
    # The undecorated function behind the fixture, as pytest would call it.
    with pytest.raises(TypeError, match="must set url"):
        fixture.__wrapped__(_NoUrl())


@pytest.mark.postgres
class TestPostgresBackend(BackendContract):
    """postgres:// under asyncio (asyncpg runs on asyncio only)."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def channels_url(self, postgres_url: str) -> str:
        return postgres_url

    def cleanup(self, url: str, key_prefix: str) -> None:
        delete_rows(url, key_prefix)
