"""The sandbox provider: a :class:`~sharing_service.providers.DataProvider` answering every
dataset of ``sharing_service/demo/datasets.json`` from the sandbox population in memory, with
exactly its field names and types. The sharing service uses it for providers registered with
``kind: sandbox`` (local and test runs; production refuses them)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import date
from functools import lru_cache

from sandbox.population import SOURCES, SUBJECT_KINDS, SandboxPopulation
from sharing_service.providers import ProviderRecord, ProviderUnavailable, Subject


@lru_cache(maxsize=4)
def _population_for(today: date) -> SandboxPopulation:
    return SandboxPopulation.build(today=today)


class SandboxProvider:
    """A :class:`~sharing_service.providers.DataProvider` answering from the sandbox population.

    ``unavailable_datasets`` simulate an outage: lookups in them raise
    :class:`ProviderUnavailable`, as a department whose system is down would."""

    def __init__(
        self,
        population: SandboxPopulation | None = None,
        *,
        today: date | None = None,
        unavailable_datasets: frozenset[str] = frozenset(),
    ) -> None:
        if population is None:
            population = _population_for(today or date.today())
        self.population = population
        self.unavailable_datasets = unavailable_datasets
        self._closed = False

    async def fetch(
        self,
        *,
        dataset: str,
        subject: Subject,
        fields: Sequence[str],
        request_id: str,
    ) -> ProviderRecord | None:
        if self._closed:
            raise ProviderUnavailable("沙箱数据源已关闭")
        if dataset in self.unavailable_datasets:
            raise ProviderUnavailable(f"模拟故障：数据集 {dataset} 暂不可用")
        kinds = SUBJECT_KINDS.get(dataset)
        if kinds is None:
            # A dataset the sandbox does not serve is a configuration error, but callers treat
            # it as any unavailable provider: manual handling, never a rejection.
            raise ProviderUnavailable(f"沙箱未提供数据集 {dataset}")
        if subject.kind not in kinds:
            return None
        stored = self.population.stored(dataset, subject.id.strip().upper())
        if stored is None:
            return None
        values = {
            name: copy.deepcopy(stored.values[name]) for name in fields if name in stored.values
        }
        return ProviderRecord(values=values, updated_at=stored.updated_at, source=SOURCES[dataset])

    async def close(self) -> None:
        self._closed = True
