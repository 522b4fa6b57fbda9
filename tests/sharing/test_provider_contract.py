"""One contract, two providers: the built-in sandbox and the HTTP adapter talking to a real
local server that serves the same population over the documented protocol. Whatever the
lookup layer relies on must hold for both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest

from sandbox import COMPANIES, PERSONAS, SandboxPopulation, SandboxProvider
from sharing_service.http_provider import HttpProvider
from sharing_service.providers import DataProvider, ProviderUnavailable, Subject
from tests.fakes.provider import serve_provider

TODAY = date(2026, 11, 23)
TOKEN = "contract-test-token"
POPULATION = SandboxPopulation.build(today=TODAY)
PERSON = PERSONAS[0].id_number
COMPANY = COMPANIES[0].uscc


@pytest.fixture(params=["sandbox", "http"])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[DataProvider]:
    sandbox = SandboxProvider(POPULATION, unavailable_datasets=frozenset({"yibao.canbao"}))
    if request.param == "sandbox":
        yield sandbox
        return
    async with serve_provider(sandbox, token=TOKEN) as server:
        http = HttpProvider(
            name="contract", base_url=server.base_url, token=TOKEN, read_timeout_s=5.0
        )
        try:
            yield http
        finally:
            await http.close()


async def test_a_record_comes_back_with_exactly_the_fields_asked(provider: DataProvider) -> None:
    record = await provider.fetch(
        dataset="gongan.huji",
        subject=Subject(kind="person", id=PERSON),
        fields=["name", "registered_region"],
        request_id="contract-1",
    )
    assert record is not None
    expected = POPULATION.record("gongan.huji", PERSON)
    assert expected is not None
    assert record.values == {k: expected[k] for k in ("name", "registered_region")}
    assert record.updated_at.tzinfo is not None and record.source


async def test_no_fields_asks_only_whether_a_record_exists(provider: DataProvider) -> None:
    record = await provider.fetch(
        dataset="gongan.huji",
        subject=Subject(kind="person", id=PERSON),
        fields=[],
        request_id="contract-1",
    )
    assert record is not None and record.values == {}


async def test_companies_are_looked_up_by_credit_code(provider: DataProvider) -> None:
    record = await provider.fetch(
        dataset="shichang.zhizhao",
        subject=Subject(kind="company", id=COMPANY),
        fields=["status", "name"],
        request_id="contract-1",
    )
    assert record is not None and record.values["name"] == COMPANIES[0].name


@pytest.mark.parametrize(
    ("dataset", "subject"),
    [
        ("gongan.huji", Subject(kind="person", id="110101200001011236")),  # nobody we know
        ("shichang.zhizhao", Subject(kind="person", id=PERSON)),  # wrong kind of subject
    ],
)
async def test_no_record_is_none(provider: DataProvider, dataset: str, subject: Subject) -> None:
    assert (
        await provider.fetch(dataset=dataset, subject=subject, fields=["name"], request_id="c")
        is None
    )


async def test_an_outage_is_unavailable_not_none(provider: DataProvider) -> None:
    with pytest.raises(ProviderUnavailable):
        await provider.fetch(
            dataset="yibao.canbao",
            subject=Subject(kind="person", id=PERSON),
            fields=["insured"],
            request_id="contract-1",
        )
