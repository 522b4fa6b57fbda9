"""Applications from draft to result: the rules of intake, one module per topic.

States (each change is a timeline entry with its actor)::

    draft ─> submitted ─> accepted ─> under_review ─> approved ─> completed ─> delivered
                 │             │             │  ▲        denied ─┘
                 └─ 不予受理    │             ▼  │
                               │   correction_requested ─> resubmitted
                               └─ 秒批: approved / denied directly
    withdrawn: by the applicant, any time before a decision
    terminated: 容缺 materials not supplied by their deadline

* An application is bound to the item version it was created for, forever.
* Submitting carries an ``Idempotency-Key``: the same key returns the same application; a unique
  index on (applicant, key) makes two concurrent submissions with one key produce one. The key
  is stored with a fingerprint of the request it came with: the same key with a different
  request is refused (422 ``idempotency-key-reused``), never answered with the old application.
* Materials are met by data sharing or an e-certificate (the sharing service decides; the
  applicant is not asked), by a file from the applicant's library or a new upload, or by a
  signed commitment (告知承诺) where the item allows it. A material the item lists as 可容缺
  may be missing at acceptance; the deadline is counted in working days, the result is held
  until it is supplied, and an application still missing it after the deadline is terminated.
* A submission whose materials are all met without a file is accepted at once (the formal
  check is done); one with uploads or 容缺 waits for a clerk's acceptance.
"""
