"""The authorisation table: who may call what, over every path of the gateway, one row per
route with a concrete request and who gets which status. Requests are chosen to pass
authorisation and then stop cheaply (an id that does not exist, a body the service refuses), so
a 404 or 422 for a principal means "let through", and a 401 or 403 means "stopped".

``tests/gateway/test_authorization_matrix.py`` drives it against the gateway; the staff
console's browser test compares each role's menu with it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

PRINCIPALS = (
    "anonymous",
    "citizen_a",
    "citizen_b",
    "citizen_low",
    "window_clerk",
    "reviewer",
    "reviewer_other",
    "catalog_admin",
    "catalog_admin_other",
    "catalog_admin_elsewhere",
    "catalog_approver",
    "catalog_approver_other",
    "auditor",
    "ops",
)
CITIZENS = ("citizen_a", "citizen_b", "citizen_low")
STAFF = (
    "window_clerk",
    "reviewer",
    "reviewer_other",
    "catalog_admin",
    "catalog_admin_other",
    "catalog_admin_elsewhere",
    "catalog_approver",
    "catalog_approver_other",
    "auditor",
    "ops",
)
NOBODY = str(uuid.uuid4())


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(PRINCIPALS, status)


def logged_in(status: int, **special: int) -> dict[str, int]:
    """Any logged-in person (citizen or staff)."""
    return {"anonymous": 401, **dict.fromkeys(CITIZENS + STAFF, status), **special}


def citizens(status: int, **special: int) -> dict[str, int]:
    """Citizens only: staff are refused by the gateway (403)."""
    return {"anonymous": 401, **dict.fromkeys(STAFF, 403), **dict.fromkeys(CITIZENS, status)} | (
        special
    )


def staff(status: int, allowed: tuple[str, ...]) -> dict[str, int]:
    """Staff routes: citizens are refused by the gateway, staff without the role by the
    service (403); those with it get ``status``."""
    expected = {"anonymous": 401, **dict.fromkeys(CITIZENS, 403)}
    for who in STAFF:
        expected[who] = status if who in allowed else 403
    return expected


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    """The route's path as declared (under /api/v1)."""
    expected: dict[str, int]
    path: str = ""
    """The concrete path requested ('' = the route itself)."""
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


IDEM = {"Idempotency-Key": "matrix-key-1"}
MONTHS = {"start_month": "2026-01", "end_month": "2026-11"}
REVIEWERS = ("reviewer", "reviewer_other")
# Catalogue staff of 东莞市民政局 (the department of the matrix's items, region 441900), of
# 东莞市公安局, and of a 民政局 of another city (深圳, 440300): same department name, other region.
CATALOG_ADMINS = ("catalog_admin", "catalog_admin_other", "catalog_admin_elsewhere")
CATALOG_APPROVERS = ("catalog_approver", "catalog_approver_other")

TABLE: tuple[Row, ...] = (
    # --- login
    Row("POST", "/auth/wechat", everyone(401), json={"code": "no-such-code"}),
    Row("POST", "/auth/refresh", everyone(401), json={"refresh_token": "x" * 43}),
    Row("POST", "/auth/logout", everyone(204), json={"refresh_token": "x" * 43}),
    # Anyone may try; the same wrong login from one address is slowed down after five failures.
    Row(
        "POST",
        "/auth/staff",
        everyone(401) | dict.fromkeys(PRINCIPALS[5:], 429),
        json={"username": "nobody", "password": "wrong"},
    ),
    Row("POST", "/auth/dev", everyone(200), json={"openid": "o-matrix"}),
    # --- public
    Row("GET", "/items", everyone(200)),
    Row("GET", "/items/{code}", everyone(404), path="/items/no-such-code"),
    Row("GET", "/bundles", everyone(200)),
    Row("GET", "/facets", everyone(200)),
    Row("GET", "/bundles/{bundle_id}", everyone(404), path=f"/bundles/{NOBODY}"),
    Row("GET", "/certificates/verify", everyone(200), params={"id": NOBODY}),
    # --- me
    Row("GET", "/me", logged_in(200)),
    Row(
        "POST",
        "/me/real-name",
        citizens(422),
        json={"name": "张三", "id_number": "440101199001011230"},
    ),
    Row("POST", "/me/real-person/start", citizens(200, citizen_low=403)),
    Row("POST", "/me/real-person", citizens(404), json={"verify_id": "no-such-id"}),
    Row("GET", "/me/companies", citizens(200)),
    Row(
        "POST",
        "/me/companies",
        citizens(422, citizen_low=403),
        json={"uscc": "91441900MA4W12340X"},
    ),
    Row("GET", "/home", citizens(200)),
    # --- applications, wallet, data use, messages
    Row(
        "POST",
        "/applications",
        citizens(404, citizen_low=403),
        json={"item_code": "no-such-code", "form": {}},
        headers=IDEM,
    ),
    Row("GET", "/applications", citizens(200)),
    Row("GET", "/applications/{application_id}", citizens(404), path=f"/applications/{NOBODY}"),
    Row(
        "POST",
        "/applications/{application_id}/materials",
        citizens(400),  # no multipart body: refused by intake after authorisation
        path=f"/applications/{NOBODY}/materials",
    ),
    Row(
        "POST",
        "/applications/{application_id}/submit",
        citizens(404),
        path=f"/applications/{NOBODY}/submit",
        json={"materials": []},
    ),
    Row(
        "POST",
        "/applications/{application_id}/supplement",
        citizens(404),
        path=f"/applications/{NOBODY}/supplement",
        json={"materials": [{"index": 0, "commitment": True}]},
    ),
    Row(
        "POST",
        "/applications/{application_id}/withdraw",
        citizens(404),
        path=f"/applications/{NOBODY}/withdraw",
        json={"reason": "不再需要办理"},
    ),
    Row(
        "POST",
        "/applications/{application_id}/rating",
        citizens(404),
        path=f"/applications/{NOBODY}/rating",
        json={"score": 5},
    ),
    # The wallet and the data-use records belong to a verified person.
    Row("GET", "/certificates", citizens(200, citizen_low=403)),
    Row("GET", "/certificates/{certificate_id}", citizens(404), path=f"/certificates/{NOBODY}"),
    Row("GET", "/data-usage", citizens(200, citizen_low=403)),
    # Consents to lookups of one's data belong to a verified person too.
    Row("GET", "/consents", citizens(200, citizen_low=403)),
    Row("POST", "/consents", citizens(201, citizen_low=403), json={"item_code": "matrix-item"}),
    Row(
        "DELETE",
        "/consents/{consent_id}",
        citizens(404),  # nobody's consent: as absent for an unverified citizen as for others
        path=f"/consents/{NOBODY}",
    ),
    Row("GET", "/messages", citizens(200)),
    Row("GET", "/subscriptions/templates", citizens(200)),
    # citizen_a's own notification: the others get 404 (someone else's is as absent).
    Row(
        "POST",
        "/messages/{message_id}/read",
        citizens(404, citizen_a=200),
        path="/messages/{a_notification}/read",
    ),
    Row(
        "POST",
        "/subscriptions",
        citizens(200),
        json={"results": {"tmpl-certificate-issued": "accept"}},
    ),
    # A number that is not a mobile one, and a code never asked for: refused by notify (422).
    Row("POST", "/me/phone", citizens(422), json={"mobile": "12345"}),
    Row("POST", "/me/phone/verify", citizens(422), json={"code": "123456"}),
    # --- staff: window
    Row(
        "GET",
        "/staff/applications",
        staff(200, ("window_clerk", *REVIEWERS, "auditor")),
    ),
    Row("POST", "/staff/applications", staff(422, ("window_clerk",)), json={}),
    # Intake lets window clerks, reviewers and auditors reach acceptance and then shows each
    # only the applications they may accept (others: 404, as for one that does not exist).
    Row(
        "POST",
        "/staff/applications/{id}/accept",
        staff(404, ("window_clerk", *REVIEWERS, "auditor")),
        path=f"/staff/applications/{NOBODY}/accept",
    ),
    Row(
        "POST",
        "/staff/applications/{id}/not-accept",
        staff(404, ("window_clerk", *REVIEWERS, "auditor")),
        path=f"/staff/applications/{NOBODY}/not-accept",
        json={"reason": "材料不齐全"},
    ),
    Row(
        "GET",
        "/staff/applications/{id}",
        staff(404, ("window_clerk", *REVIEWERS, "auditor")),
        path=f"/staff/applications/{NOBODY}",
    ),
    # A scan for the applicant at the counter: the window's; an empty file is refused (422).
    Row("POST", "/staff/files", staff(422, ("window_clerk",))),
    # Any staff member may ask; intake serves the file only to those handling its application.
    Row("GET", "/staff/files/{id}", staff(404, STAFF), path=f"/staff/files/{NOBODY}"),
    # --- staff: review
    Row("GET", "/staff/cases/queue", staff(200, REVIEWERS)),
    Row(
        "GET",
        "/staff/cases/{id}",
        staff(404, (*REVIEWERS, "auditor")),
        path=f"/staff/cases/{NOBODY}",
    ),
    *(
        Row(
            "POST",
            f"/staff/cases/{{id}}/{action}",
            staff(404, REVIEWERS),
            path=f"/staff/cases/{NOBODY}/{action}",
            json=body,
        )
        for action, body in (
            ("claim", None),
            ("advance", {"comment": ""}),
            ("approve", {"comment": ""}),
            ("deny", {"reason": "不符合条件"}),
            ("correction", {"reason": "请补充材料", "materials": []}),
            ("suspend", {"procedure": "现场核查", "comment": ""}),
            ("resume", {"comment": ""}),
            ("not-accept", {"reason": "不属于本部门"}),
        )
    ),
    Row("POST", "/staff/rules/dry-run", staff(422, CATALOG_ADMINS), json={}),
    # --- staff: catalogue
    Row("POST", "/staff/catalog/items", staff(422, CATALOG_ADMINS), json={}),
    Row("GET", "/staff/catalog/item-versions", staff(200, (*CATALOG_ADMINS, *CATALOG_APPROVERS))),
    Row(
        "POST",
        "/staff/catalog/item-versions/{id}/dry-run",
        staff(404, CATALOG_ADMINS),
        path=f"/staff/catalog/item-versions/{NOBODY}/dry-run",
    ),
    Row("GET", "/staff/catalog/synonyms", staff(200, (*CATALOG_ADMINS, *CATALOG_APPROVERS))),
    # Searches that found nothing: no department's and no personal data, so every catalogue
    # member reads the list; an admin marks one handled (an empty body: let through, refused).
    Row(
        "GET",
        "/staff/catalog/unmatched-searches",
        staff(200, (*CATALOG_ADMINS, *CATALOG_APPROVERS)),
    ),
    Row(
        "POST",
        "/staff/catalog/unmatched-searches/handled",
        staff(422, CATALOG_ADMINS),
        json={},
    ),
    Row(
        "PUT",
        "/staff/catalog/item-versions/{id}",
        staff(422, CATALOG_ADMINS),
        path=f"/staff/catalog/item-versions/{NOBODY}",
        json={},
    ),
    Row(
        "POST",
        "/staff/catalog/items/{id}/revisions",
        # 民政局's item: its admin opens a revision, 公安局's does not learn it exists.
        staff(404, CATALOG_ADMINS) | {"catalog_admin": 201},
        path="/staff/catalog/items/{an_item}/revisions",
    ),
    Row(
        "GET",
        "/staff/catalog/item-versions/{id}",
        staff(404, (*CATALOG_ADMINS, *CATALOG_APPROVERS))
        | {"catalog_admin": 200, "catalog_approver": 200},
        path="/staff/catalog/item-versions/{a_version}",
    ),
    Row(
        "GET",
        "/staff/catalog/item-versions/{id}/problems",
        staff(404, (*CATALOG_ADMINS, *CATALOG_APPROVERS))
        | {"catalog_admin": 200, "catalog_approver": 200},
        path="/staff/catalog/item-versions/{a_version}/problems",
    ),
    Row(
        "POST",
        "/staff/catalog/item-versions/{id}/publish",
        staff(404, CATALOG_ADMINS),
        path=f"/staff/catalog/item-versions/{NOBODY}/publish",
    ),
    Row(
        "POST",
        "/staff/catalog/item-versions/{id}/submit",
        staff(404, CATALOG_ADMINS),
        path=f"/staff/catalog/item-versions/{NOBODY}/submit",
    ),
    Row(
        "POST",
        "/staff/catalog/item-versions/{id}/approve",
        # A change 民政局's approver submitted: four-eyes-required (403) for them, unknown (404)
        # to 公安局's approver, refused by role (403) to everyone else.
        staff(403, ("catalog_approver_other",)) | {"catalog_approver_other": 404},
        path="/staff/catalog/item-versions/{a_submitted}/approve",
    ),
    Row(
        "POST",
        "/staff/catalog/item-versions/{id}/reject",
        staff(404, CATALOG_APPROVERS),
        path=f"/staff/catalog/item-versions/{NOBODY}/reject",
        json={"reason": "矩阵测试"},
    ),
    Row("GET", "/staff/catalog/rule-changes", staff(200, (*CATALOG_APPROVERS, "auditor"))),
    Row(
        "POST",
        "/staff/catalog/items/{id}/withdraw",
        staff(404, CATALOG_ADMINS),
        path=f"/staff/catalog/items/{NOBODY}/withdraw",
    ),
    Row("POST", "/staff/catalog/bundles", staff(422, CATALOG_ADMINS), json={}),
    Row(
        "POST",
        "/staff/catalog/bundle-versions/{id}/publish",
        staff(404, CATALOG_ADMINS),
        path=f"/staff/catalog/bundle-versions/{NOBODY}/publish",
    ),
    # Synonyms serve every department: only the (rare) platform catalogue role keeps them.
    Row("PUT", "/staff/catalog/synonyms", staff(422, ()), json={}),
    Row("POST", "/staff/catalog/imports", staff(415, CATALOG_ADMINS)),
    Row("GET", "/staff/catalog/exports", staff(200, CATALOG_ADMINS)),
    # Import jobs: read by who started them (and auditors); anyone else's is 404.
    Row(
        "GET",
        "/staff/catalog/jobs/{id}",
        staff(404, (*CATALOG_ADMINS, "auditor")),
        path=f"/staff/catalog/jobs/{NOBODY}",
    ),
    # --- staff: rectifications, audit, notifications
    Row(
        "GET",
        "/staff/rectifications",
        staff(200, ("reviewer", "reviewer_other", "auditor")),
        params={"status": "open"},
    ),
    Row(
        "GET",
        "/staff/rectifications/overdue",
        staff(200, ("reviewer", "reviewer_other", "auditor")),
    ),
    *(
        Row(
            "POST",
            f"/staff/rectifications/{{id}}/{action}",
            staff(404, REVIEWERS),
            path=f"/staff/rectifications/{NOBODY}/{action}",
            json=body,
        )
        for action, body in (
            ("reply", {"text": "已整改：增加了窗口人手"}),
            ("return-visit", {"text": "回访：群众表示满意"}),
            ("close", None),
        )
    ),
    Row("GET", "/staff/audit", staff(200, ("auditor",))),
    Row("GET", "/staff/audit/verify", staff(200, ("auditor",))),
    Row(
        "POST",
        "/staff/audit/search",
        staff(200, ("auditor",)),
        json={"subject": {"kind": "person", "id_number": "440101199001011233"}, "limit": 5},
    ),
    Row("GET", "/staff/audit/checkpoints", staff(200, ("auditor",))),
    Row(
        "POST",
        "/staff/certificates/{id}/status",
        staff(404, REVIEWERS),
        path=f"/staff/certificates/{NOBODY}/status",
        json={"status": "撤销", "reason": "矩阵测试"},
    ),
    Row("GET", "/staff/notify/messages", staff(200, ("ops",))),
    Row("GET", "/staff/notify/templates", staff(200, ())),
    # --- operations: every service's health, dead letters of each service
    Row("GET", "/staff/ops/status", staff(200, ("ops",))),
    Row(
        "GET",
        "/staff/ops/dead-letters/{service}",
        staff(200, ("ops",)),
        path="/staff/ops/dead-letters/notify",
    ),
    Row(
        "POST",
        "/staff/ops/dead-letters/{service}/{dead_letter_id}/replay",
        staff(404, ("ops",)),
        path=f"/staff/ops/dead-letters/intake/{NOBODY}/replay",
    ),
    # --- statistics
    Row("GET", "/stats/catalog", staff(200, STAFF)),
    Row(
        "GET",
        "/stats/intake",
        staff(200, ("reviewer", "reviewer_other", "auditor")),
        params={"start": "2026-01-01", "end": "2026-11-30"},
    ),
    Row(
        "GET",
        "/stats/intake/monthly",
        staff(200, ("reviewer", "reviewer_other", "auditor")),
        params=MONTHS,
    ),
    Row(
        "GET",
        "/stats/intake/monthly.csv",
        staff(200, ("reviewer", "reviewer_other", "auditor")),
        params=MONTHS,
    ),
    Row("GET", "/stats/catalog/monthly", staff(200, STAFF), params=MONTHS),
    Row("GET", "/stats/catalog/monthly.csv", staff(200, STAFF), params=MONTHS),
)


REFUSED_ALTHOUGH_THE_ROLE_ALLOWS = {
    # 四眼原则: the approver who submitted the change may not approve it; the operation is still
    # an approver's, and the console shows it (the refusal says why).
    ("POST /api/v1/staff/catalog/item-versions/{id}/approve", "catalog_approver"),
}


def table_allows(principal: str) -> set[str]:
    """The staff operations (``"METHOD /api/v1/…"``) the table lets ``principal`` use."""
    allowed = set()
    for row in TABLE:
        if not row.route.startswith(("/staff/", "/stats/")):
            continue
        operation = f"{row.method} /api/v1{row.route}"
        if row.expected[principal] != 403 or (operation, principal) in (
            REFUSED_ALTHOUGH_THE_ROLE_ALLOWS
        ):
            allowed.add(operation)
    return allowed
