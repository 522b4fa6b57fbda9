"""What an answer of sharing's ``POST /lookups`` means to its callers (intake's prefill,
approval's 秒批), read once in the contract: a refusal and a department's failure are answers
(the applicant types the value, a person decides the case), while sharing's own failure is not
(the caller raises its unavailability and asks again), since a restart of our own service must
not send every case in flight to a person."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.catalog.api_v1 import PublishedBundle, bundle_version_path, item_version_path
from contracts.sharing.api_v1 import LookupAnswer

PROVIDER_DOWN = {"type": "urn:wangban:problem:provider-unavailable", "status": 503}
SHARING_DOWN = {"type": "urn:wangban:problem:service-unavailable", "status": 503}


@pytest.mark.parametrize(
    ("status", "body", "meaning"),
    [
        (200, {"lookup_id": "l-1", "found": True, "attributes": {}}, "found"),
        (200, {"lookup_id": "l-2", "found": False, "attributes": {}, "added": 1}, "not_found"),
        (401, {"type": "urn:wangban:problem:unauthorized"}, "refused"),
        (403, {"type": "urn:wangban:problem:consent-required"}, "refused"),
        (422, {"type": "urn:wangban:problem:invalid-lookup"}, "unavailable"),
        (503, PROVIDER_DOWN, "unavailable"),
        (503, SHARING_DOWN, None),
        (500, {"type": "urn:wangban:problem:internal-error"}, None),
        (502, None, None),  # a proxy's page, not JSON
    ],
)
def test_a_lookup_answer_means_found_refused_unavailable_or_sharing_down(
    status: int, body: Any, meaning: str | None
) -> None:
    answer = LookupAnswer.from_response(status, body)
    assert (answer.status if answer else None) == meaning


def test_a_catalog_version_is_asked_for_only_by_an_id_the_catalog_could_have_issued() -> None:
    version = "8f0a9a43-52d8-4a0b-9f57-1c1b8f1d2f6e"
    assert item_version_path(version) == f"/item-versions/{version}"
    assert bundle_version_path(version) == f"/bundle-versions/{version}"
    assert item_version_path("../admin") is None
    assert bundle_version_path("") is None
    draft = {"id": version, "bundle_id": "b", "content": {}, "member_version_ids": []}
    assert PublishedBundle.if_published({**draft, "published_at": None}) is None
    published = PublishedBundle.if_published({**draft, "published_at": "2025-01-02T03:04:05+00:00"})
    assert published is not None and published.version_id == version
