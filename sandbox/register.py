"""The sandbox register: the sandbox population as the real-name verification provider of
local and test runs (the gateway's :class:`~gateway.identity_provider.IdentityVerifier` when no
``WANGBAN_IDENTITY_PROVIDER_URL`` is set), so the demo personas can bind their real names and
companies in development. Production never loads it: its settings require the URL."""

from __future__ import annotations

from gateway.identity_provider import CompanyCheck, PersonCheck
from sandbox.population import COMPANIES, PEOPLE, PERSONAS, USCC_HUAYUE, USCC_XINDA


class SandboxIdentityVerifier:
    """The sharing sandbox's invented population as the register (local and test runs only).

    People are the demo personas, the companies' legal representatives and two agents; each
    matches under the name the sandbox gives them. A company's representative
    (``Company.representative_id``) acts for it as ``legal_representative``. The sandbox has
    no agents of its own, so two are registered here: the spouses who work at their
    husband's company (袁淑仪 for 华粤精密五金, 蔡美玉 for 鑫达物流; the sandbox population
    has them with those names in the household register).
    """

    def __init__(self) -> None:
        agents = (
            (USCC_HUAYUE, PEOPLE["yuan_shuyi"].name, PEOPLE["yuan_shuyi"].id_number),
            (USCC_XINDA, PEOPLE["cai_meiyu"].name, PEOPLE["cai_meiyu"].id_number),
        )
        people: dict[str, str] = {}
        for persona in PERSONAS:
            people[persona.id_number] = persona.name
        for company in COMPANIES:
            people.setdefault(company.representative_id, company.representative)
        for _, name, id_number in agents:
            people.setdefault(id_number, name)
        self._people = people
        self._companies = {company.uscc: company for company in COMPANIES}
        self._agents = frozenset((uscc, id_number) for uscc, _, id_number in agents)

    def __repr__(self) -> str:
        return f"SandboxIdentityVerifier(people={len(self._people)})"

    async def verify_person(self, *, name: str, id_number: str) -> PersonCheck:
        known = self._people.get(id_number.strip().upper())
        if known is None:
            return PersonCheck("not_found")
        return PersonCheck("match" if known == name.strip() else "mismatch")

    async def company_role(self, *, uscc: str, name: str, id_number: str) -> CompanyCheck:
        company = self._companies.get(uscc.strip().upper())
        if company is None:
            return CompanyCheck(company_name=None, role=None)
        id_number = id_number.strip().upper()
        if self._people.get(id_number) != name.strip():
            # Only the right name with the right number may act for anyone.
            return CompanyCheck(company_name=company.name, role=None)
        if company.representative_id == id_number:
            return CompanyCheck(company_name=company.name, role="legal_representative")
        if (company.uscc, id_number) in self._agents:
            return CompanyCheck(company_name=company.name, role="agent")
        return CompanyCheck(company_name=company.name, role=None)

    async def close(self) -> None:
        return None
