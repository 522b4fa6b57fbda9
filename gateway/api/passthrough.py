"""Which gateway routes pass a service's answer through, as data.

:data:`STAFF_ROUTES` is the staff console's API: each row becomes a route under
``/api/v1/staff`` (:mod:`.staff`) that authenticates the staff member and hands the request on,
query string and body included; the service checks the roles and the department. :data:`ROUTES`
adds the citizen's and the public pass-through routes written out in their own modules.
:data:`PASS_THROUGH` maps every one of them to the service operation it calls, so the gateway's
OpenAPI document can take their success answers from the service's (:mod:`gateway.contract`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from gateway.api import API
from gateway.contract import Upstream, operation_roles
from wangban.auth import Identity


class StaffRoute(NamedTuple):
    method: str
    path: str
    """Under ``/api/v1/staff``."""
    service: str
    service_path: str
    summary: str
    uploads: bool = False
    """The body is a file (multipart, CSV or JSON import): it may be too large (413) or of a
    type the service refuses (415)."""


STAFF_ROUTES: tuple[StaffRoute, ...] = (
    StaffRoute(
        "GET", "/applications", "intake", "/staff/applications", "Applications of my window"
    ),
    StaffRoute(
        "POST",
        "/applications",
        "intake",
        "/staff/applications",
        "Accept an application at the window",
    ),
    StaffRoute(
        "POST", "/applications/{id}/accept", "intake", "/staff/applications/{id}/accept", "受理"
    ),
    StaffRoute(
        "POST",
        "/applications/{id}/not-accept",
        "intake",
        "/staff/applications/{id}/not-accept",
        "不予受理",
    ),
    StaffRoute(
        "GET",
        "/applications/{id}",
        "intake",
        "/staff/applications/{id}",
        "One application I handle: form and materials (where each came from)",
    ),
    StaffRoute(
        "POST",
        "/files",
        "intake",
        "/staff/files",
        "Scan a paper material into the applicant's library (window)",
        uploads=True,
    ),
    StaffRoute("GET", "/files/{id}", "intake", "/files/{id}", "Download a material I handle"),
    StaffRoute("GET", "/cases/queue", "approval", "/cases/queue", "My department's queue"),
    StaffRoute("GET", "/cases/{id}", "approval", "/cases/{id}", "A case and why it was decided"),
    StaffRoute("POST", "/cases/{id}/claim", "approval", "/cases/{id}/claim", "Claim a case"),
    StaffRoute(
        "POST", "/cases/{id}/advance", "approval", "/cases/{id}/advance", "Next workflow step"
    ),
    StaffRoute("POST", "/cases/{id}/approve", "approval", "/cases/{id}/approve", "Approve"),
    StaffRoute("POST", "/cases/{id}/deny", "approval", "/cases/{id}/deny", "Deny with a reason"),
    StaffRoute("POST", "/cases/{id}/correction", "approval", "/cases/{id}/correction", "补正"),
    StaffRoute(
        "POST", "/cases/{id}/suspend", "approval", "/cases/{id}/suspend", "特别程序: suspend"
    ),
    StaffRoute("POST", "/cases/{id}/resume", "approval", "/cases/{id}/resume", "Resume"),
    StaffRoute("POST", "/cases/{id}/not-accept", "approval", "/cases/{id}/not-accept", "不予受理"),
    StaffRoute("POST", "/rules/dry-run", "approval", "/rules/dry-run", "Dry-run a 秒批 rule set"),
    StaffRoute("POST", "/catalog/items", "catalog", "/admin/items", "New item draft"),
    StaffRoute(
        "GET",
        "/catalog/item-versions",
        "catalog",
        "/admin/item-versions",
        "My department's items: the newest version of each, with its status",
    ),
    StaffRoute(
        "POST",
        "/catalog/item-versions/{id}/dry-run",
        "catalog",
        "/admin/item-versions/{id}/dry-run",
        "Replay a draft's 秒批 rules on recent decided cases before submitting",
    ),
    StaffRoute("GET", "/catalog/synonyms", "catalog", "/admin/synonyms", "Read search synonyms"),
    StaffRoute(
        "GET",
        "/catalog/unmatched-searches",
        "catalog",
        "/admin/unmatched-searches",
        "What citizens searched for and did not find, with counts",
    ),
    StaffRoute(
        "POST",
        "/catalog/unmatched-searches/handled",
        "catalog",
        "/admin/unmatched-searches/handled",
        "Mark an unmatched search handled",
    ),
    StaffRoute(
        "GET",
        "/catalog/item-versions/{id}",
        "catalog",
        "/admin/item-versions/{id}",
        "A version of my department's item (drafts included)",
    ),
    StaffRoute(
        "PUT", "/catalog/item-versions/{id}", "catalog", "/admin/item-versions/{id}", "Edit a draft"
    ),
    StaffRoute(
        "POST", "/catalog/items/{id}/revisions", "catalog", "/admin/items/{id}/revisions", "Revise"
    ),
    StaffRoute(
        "GET",
        "/catalog/item-versions/{id}/problems",
        "catalog",
        "/admin/item-versions/{id}/problems",
        "Problems of a draft",
    ),
    StaffRoute(
        "POST",
        "/catalog/item-versions/{id}/publish",
        "catalog",
        "/admin/item-versions/{id}/publish",
        "Publish",
    ),
    StaffRoute(
        "POST",
        "/catalog/item-versions/{id}/submit",
        "catalog",
        "/admin/item-versions/{id}/submit",
        "Submit a rule change for review (四眼原则)",
    ),
    StaffRoute(
        "POST",
        "/catalog/item-versions/{id}/approve",
        "catalog",
        "/admin/item-versions/{id}/approve",
        "Approve and publish another person's submitted change",
    ),
    StaffRoute(
        "POST",
        "/catalog/item-versions/{id}/reject",
        "catalog",
        "/admin/item-versions/{id}/reject",
        "Send a submitted change back to draft",
    ),
    StaffRoute(
        "GET", "/catalog/rule-changes", "catalog", "/admin/rule-changes", "Rule-change records"
    ),
    StaffRoute(
        "POST", "/catalog/items/{id}/withdraw", "catalog", "/admin/items/{id}/withdraw", "Withdraw"
    ),
    StaffRoute("POST", "/catalog/bundles", "catalog", "/admin/bundles", "New bundle"),
    StaffRoute(
        "POST",
        "/catalog/bundle-versions/{id}/publish",
        "catalog",
        "/admin/bundle-versions/{id}/publish",
        "Publish a bundle",
    ),
    StaffRoute("PUT", "/catalog/synonyms", "catalog", "/admin/synonyms", "Search synonyms"),
    StaffRoute(
        "POST",
        "/catalog/imports",
        "catalog",
        "/admin/imports",
        "Import items (CSV/JSON): a job",
        uploads=True,
    ),
    StaffRoute(
        "GET", "/catalog/jobs/{id}", "catalog", "/admin/jobs/{id}", "An import job's progress"
    ),
    StaffRoute("GET", "/catalog/exports", "catalog", "/admin/exports", "Export items"),
    StaffRoute(
        "GET",
        "/rectifications",
        "intake",
        "/staff/rectifications",
        "My department's rectifications, by state",
    ),
    StaffRoute(
        "GET",
        "/rectifications/overdue",
        "intake",
        "/staff/rectifications/overdue",
        "Overdue rectifications",
    ),
    StaffRoute(
        "POST", "/rectifications/{id}/reply", "intake", "/staff/rectifications/{id}/reply", "Reply"
    ),
    StaffRoute(
        "POST",
        "/rectifications/{id}/return-visit",
        "intake",
        "/staff/rectifications/{id}/return-visit",
        "Return visit",
    ),
    StaffRoute(
        "POST", "/rectifications/{id}/close", "intake", "/staff/rectifications/{id}/close", "Close"
    ),
    StaffRoute("GET", "/audit", "sharing", "/admin/audit", "Data-use audit records"),
    StaffRoute("GET", "/audit/verify", "sharing", "/admin/audit/verify", "Verify the audit chain"),
    StaffRoute(
        "POST",
        "/audit/search",
        "sharing",
        "/admin/audit/search",
        "Data-use audit records by filters, the data subject among them",
    ),
    StaffRoute(
        "GET",
        "/audit/checkpoints",
        "sharing",
        "/admin/audit/checkpoints",
        "The audit chain's published checkpoints",
    ),
    StaffRoute(
        "POST",
        "/certificates/{id}/status",
        "sharing",
        "/admin/certificates/{id}/status",
        "Change a certificate's status (officers of the issuing department, with a reason)",
    ),
    StaffRoute("GET", "/notify/messages", "notify", "/messages", "Push messages and their status"),
    StaffRoute("GET", "/notify/templates", "notify", "/templates", "Notification templates"),
)
"""Staff routes are the services' own: the gateway authenticates and passes them through."""


STATS_MONTHLY: dict[tuple[str, str], Upstream] = {
    ("GET", f"{API}/stats/intake/monthly"): ("intake", "GET", "/staff/statistics/monthly"),
    ("GET", f"{API}/stats/intake/monthly.csv"): (
        "intake",
        "GET",
        "/staff/statistics/monthly.csv",
    ),
    ("GET", f"{API}/stats/catalog/monthly"): ("catalog", "GET", "/statistics/monthly"),
    ("GET", f"{API}/stats/catalog/monthly.csv"): ("catalog", "GET", "/statistics/monthly.csv"),
}
"""Statistics per department and month and their CSV tables (ops.py), query passed on."""


ROUTES: dict[tuple[str, str], Upstream] = {
    # Public: the catalogue and certificate verification (catalogue.py, wallet.py).
    ("GET", f"{API}/items"): ("catalog", "GET", "/items"),
    ("GET", f"{API}/items/{{code}}"): ("catalog", "GET", "/items/{id}"),
    ("GET", f"{API}/facets"): ("catalog", "GET", "/facets"),
    ("GET", f"{API}/bundles"): ("catalog", "GET", "/bundles"),
    ("GET", f"{API}/certificates/verify"): ("sharing", "POST", "/certificates/verify"),
    # The citizen's applications (applications.py).
    ("POST", f"{API}/applications"): ("intake", "POST", "/applications"),
    ("GET", f"{API}/applications"): ("intake", "GET", "/applications"),
    ("GET", f"{API}/applications/{{application_id}}"): ("intake", "GET", "/applications/{id}"),
    ("POST", f"{API}/applications/{{application_id}}/materials"): ("intake", "POST", "/files"),
    ("POST", f"{API}/applications/{{application_id}}/submit"): (
        "intake",
        "POST",
        "/applications/{id}/submit",
    ),
    ("POST", f"{API}/applications/{{application_id}}/supplement"): (
        "intake",
        "POST",
        "/applications/{id}/supplement",
    ),
    ("POST", f"{API}/applications/{{application_id}}/withdraw"): (
        "intake",
        "POST",
        "/applications/{id}/withdraw",
    ),
    ("POST", f"{API}/applications/{{application_id}}/rating"): (
        "intake",
        "POST",
        "/applications/{id}/rating",
    ),
    # The wallet (wallet.py).
    ("GET", f"{API}/certificates"): ("sharing", "GET", "/me/certificates"),
    ("GET", f"{API}/certificates/{{certificate_id}}"): ("sharing", "GET", "/me/certificates/{id}"),
    # Data use, consents and the mobile number (me.py).
    ("GET", f"{API}/data-usage"): ("sharing", "GET", "/me/data-usage"),
    ("GET", f"{API}/consents"): ("sharing", "GET", "/me/consents"),
    ("POST", f"{API}/consents"): ("sharing", "POST", "/me/consents"),
    ("DELETE", f"{API}/consents/{{consent_id}}"): ("sharing", "DELETE", "/me/consents/{id}"),
    ("POST", f"{API}/me/phone"): ("notify", "POST", "/me/phone"),
    ("POST", f"{API}/me/phone/verify"): ("notify", "POST", "/me/phone/verify"),
    # Messages (messages.py).
    ("GET", f"{API}/messages"): ("notify", "GET", "/me/notifications"),
    ("POST", f"{API}/messages/{{message_id}}/read"): (
        "notify",
        "POST",
        "/me/notifications/{id}/read",
    ),
    ("POST", f"{API}/subscriptions"): ("notify", "POST", "/me/subscriptions"),
    ("GET", f"{API}/subscriptions/templates"): (
        "notify",
        "GET",
        "/me/subscription-templates",
    ),
    # Operations and statistics (ops.py). Every service has the same dead-letter routes (the
    # kit's): the catalogue's stand for all.
    ("GET", f"{API}/staff/ops/dead-letters/{{service}}"): ("catalog", "GET", "/ops/dead-letters"),
    ("POST", f"{API}/staff/ops/dead-letters/{{service}}/{{dead_letter_id}}/replay"): (
        "catalog",
        "POST",
        "/ops/dead-letters/{id}/replay",
    ),
    ("GET", f"{API}/stats/catalog"): ("catalog", "GET", "/statistics"),
    ("GET", f"{API}/stats/intake"): ("intake", "GET", "/staff/statistics"),
    **STATS_MONTHLY,
}
"""The pass-through routes besides the staff table's, each written out in its area's module."""

ROUTES_FORWARDING_QUERY = frozenset(
    {("GET", f"{API}/staff/ops/dead-letters/{{service}}"), ("GET", f"{API}/stats/intake")}
) | frozenset(STATS_MONTHLY)
"""Those of :data:`ROUTES` that hand the whole query string on to the service (every staff
route does)."""


PASS_THROUGH: dict[tuple[str, str], Upstream] = {
    (route.method, f"{API}/staff{route.path}"): (route.service, route.method, route.service_path)
    for route in STAFF_ROUTES
} | ROUTES
"""Every route that answers with a service's answer unchanged ((METHOD, gateway path) → the
service operation it calls): the gateway's document takes their success answers from the
service's (gateway/contract.py)."""

FORWARDING_QUERY = (
    frozenset((route.method, f"{API}/staff{route.path}") for route in STAFF_ROUTES)
    | ROUTES_FORWARDING_QUERY
)
"""Pass-through routes that hand the whole query string on to the service."""


GATHERED: dict[tuple[str, str], Upstream] = {
    # The services' health for the ops console (ops.py): every service's kit route, the same
    # in each (the catalogue's stands for all).
    ("GET", f"{API}/staff/ops/status"): ("catalog", "GET", "/ops/status"),
}
"""Staff routes the gateway answers itself from several services' answers, each with the
service operation it asks of them: the roles that operation requires are the route's."""


STAFF_AREAS = (f"{API}/staff/", f"{API}/stats/")


@functools.cache
def _staff_operation_roles() -> dict[tuple[str, str], frozenset[str] | None]:
    staff_routes = {
        r: up for r, up in (PASS_THROUGH | GATHERED).items() if r[1].startswith(STAFF_AREAS)
    }
    return operation_roles(staff_routes)


def staff_may(identity: Identity, method: str, path: str) -> bool:
    """Whether ``identity``'s roles allow the staff operation (a gathered route checks this
    itself before asking the services, which check again)."""
    roles = _staff_operation_roles()[(method, path)]
    return roles is None or not roles.isdisjoint(identity.roles)


def staff_operations(identity: Identity) -> list[str]:
    """The staff API operations (``"METHOD /api/v1/staff/…"``) ``identity``'s roles allow, as
    the services themselves require them (their documents' ``x-wangban-roles``): what the staff
    console shows. The service still checks each call, and its department and region."""
    return sorted(
        f"{method} {path}"
        for method, path in _staff_operation_roles()
        if staff_may(identity, method, path)
    )
