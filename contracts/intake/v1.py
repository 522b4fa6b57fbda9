"""What the intake service publishes (version 1).

``application.*`` events go to partner departments too, so they carry what their consumers need
and no more: ids, the item, the form, how each material was met (evidence ids, never files) and
the applicant's ID number, name and account only encrypted with the platform field key
(approval needs the first two for its data lookups, its rules and the certificate; notify needs
the account to tell), never in clear. Facts that can be derived from the encrypted ID number
(age, household region) are derived by the consumer that needs them, not published.

``application.submitted`` carried ``region_code``, ``applicant_subject``, ``applicant_age`` and
``applicant_region_code`` in clear before it was minimised; an event published then (still on
the topic, or replayed from a dead letter) is read like any event with fields this code does
not know: they are ignored (:meth:`contracts.events.Event.read`).
"""

from __future__ import annotations

from pydantic import Field

from contracts.events import CalendarDate, Event, Payload, Timestamp, registry

APPLICATIONS_TOPIC = registry.topic(
    "wangban.intake.applications",
    partitions=6,
    description="Applications (办件): submitted, accepted, supplemented, withdrawn, completed.",
    key_description="The application id: one application's events arrive in order.",
)

HOLDER_CONTEXT = "approval.holder"
"""Encryption context of the applicant's ID number and name in events (the same one the
approval service uses when it passes them on to the certificate library)."""
FORM_CONTEXT = "application.form"
"""Encryption context of an application's form in events: forms hold bank accounts, children's
names and the like, which partner departments reading the topic must not see."""
SUBJECT_CONTEXT = "application.subject"
"""Encryption context of the applicant's account id in events: a stable id in clear would let
every partner reading the topic link one person's applications across departments."""


class MaterialOutcome(Payload):
    """How one material of the application was met."""

    name: str
    source: str
    status: str
    evidence_kind: str | None = None
    evidence_id: str | None = None


class Acceptance(Payload):
    """受理 as it happened at submission: what ``application.accepted`` would have said."""

    accepted_at: Timestamp
    accepted_by: str
    accepting_window: str | None = None
    accepting_region: str | None = None
    due_date: CalendarDate | None = None
    tolerated_until: str | None = None
    tolerated_materials: list[str] = Field(default_factory=list)


@registry.event(
    type="cn.wangban.intake.application.submitted.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationSubmitted(Event):
    """An applicant submitted an application (or a bundle member was created by one)."""

    application_id: str
    parent_id: str | None = None
    item_version_id: str
    item_code: str
    item_name: str = ""
    department: str
    channel: str
    applicant_kind: str
    applicant_subject_enc: str | None = None
    """The applicant's opaque account id, encrypted (context ``application.subject``): whom the
    notify service tells about the application."""
    applicant_id_enc: str
    """The ID number or credit code, encrypted (context ``approval.holder``): approval's data
    lookups, the age and region its rules read, and the certificate's holder."""
    applicant_name_enc: str
    form_enc: str
    """The form as JSON, encrypted with the platform field key (context ``application.form``)."""
    materials: list[MaterialOutcome] = Field(default_factory=list)
    submitted_at: Timestamp
    acceptance: Acceptance | None = None
    """受理 at submission (an application complete when filed, as online ones usually are): the
    case starts from this event and no ``application.accepted`` follows. ``None`` when the
    application waits for 受理 (预审 at a window, a bundle's parent): ``application.accepted``
    or ``application.not_accepted`` says later. Consumers are upgraded before intake starts
    filling it (a consumer that ignores it would wait for an acceptance that never comes)."""


@registry.event(
    type="cn.wangban.intake.application.accepted.v1", topic=APPLICATIONS_TOPIC, key="application_id"
)
class ApplicationAccepted(Event):
    """受理 after submission (预审 at a window, a bundle's parent): the application is complete
    enough to be decided (possibly with materials tolerated as missing, 容缺, until
    ``tolerated_until``). Approval starts here. An application accepted when it was filed
    carries its acceptance in ``application.submitted`` instead, and this event does not
    follow."""

    application_id: str
    item_version_id: str
    item_code: str
    accepted_at: Timestamp
    accepted_by: str
    accepting_window: str | None = None
    accepting_region: str | None = None
    due_date: CalendarDate | None = None
    tolerated_until: str | None = None
    tolerated_materials: list[str] = Field(default_factory=list)


@registry.event(
    type="cn.wangban.intake.application.not_accepted.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationNotAccepted(Event):
    """不予受理, with the reason."""

    application_id: str
    item_code: str
    at: Timestamp
    reason: str


@registry.event(
    type="cn.wangban.intake.application.supplemented.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationSupplemented(Event):
    """补齐 / 补正: the applicant supplied what was missing or asked for."""

    application_id: str
    at: Timestamp
    materials: list[str]
    complete: bool
    """No material is missing any more (a held result may now be released)."""


@registry.event(
    type="cn.wangban.intake.application.withdrawn.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationWithdrawn(Event):
    """The applicant withdrew the application before a decision."""

    application_id: str
    at: Timestamp
    reason: str


@registry.event(
    type="cn.wangban.intake.application.terminated.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationTerminated(Event):
    """Ended without a decision, e.g. materials accepted as missing (容缺) not supplied in time."""

    application_id: str
    at: Timestamp
    reason: str


@registry.event(
    type="cn.wangban.intake.application.completed.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationCompleted(Event):
    """办结: decided and nothing outstanding; ``outcome`` is ``approved`` or ``denied``."""

    application_id: str
    item_code: str
    department: str
    outcome: str
    completed_at: Timestamp
    on_time: bool | None = None


@registry.event(
    type="cn.wangban.intake.application.reminder_due.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class SupplementReminderDue(Event):
    """容缺: the deadline for the missing materials is near; notify reminds the applicant."""

    application_id: str
    tolerated_until: str
    materials: list[str]


# --- 好差评 and rectification: scores, tags, states and dates only; never a comment, reply or
# return-visit note (free text may name people or quote ID numbers).

RATINGS_TOPIC = registry.topic(
    "wangban.intake.ratings",
    partitions=3,
    description="好差评: ratings of completed applications and the rectifications bad ones open.",
    key_description="The application id: one application's rating and rectification in order.",
)


@registry.event(
    type="cn.wangban.intake.rating.submitted.v1", topic=RATINGS_TOPIC, key="application_id"
)
class RatingSubmitted(Event):
    """The applicant rated a completed application (好差评), once and for good.

    ``score`` is 1 非常不满意 … 5 非常满意; ``tags`` come from a fixed list (办事效率,
    办事指南准确, 办事便捷, 服务态度, 材料精简, 一次办成, 多次跑动, 态度冷漠, 指南不清,
    超时办理). ``prompted`` is true when the rating followed a reminder rather than being
    given of the applicant's own accord (主动评价). The comment is not carried.
    """

    application_id: str
    department: str
    item_code: str
    score: int
    tags: list[str]
    prompted: bool
    rated_at: Timestamp


@registry.event(
    type="cn.wangban.intake.rectification.opened.v1", topic=RATINGS_TOPIC, key="application_id"
)
class RectificationOpened(Event):
    """A rating of 1 or 2 opened a rectification case (整改) for the deciding department,
    due ``due_date`` (15 working days after the rating)."""

    rectification_id: str
    application_id: str
    department: str
    item_code: str
    score: int
    opened_at: Timestamp
    due_date: CalendarDate


@registry.event(
    type="cn.wangban.intake.rectification.replied.v1", topic=RATINGS_TOPIC, key="application_id"
)
class RectificationReplied(Event):
    """The department replied to a rectification case (the reply text is not carried)."""

    rectification_id: str
    application_id: str
    department: str
    replied_at: Timestamp
    due_date: CalendarDate
    on_time: bool
    """Replied no later than the due date."""


@registry.event(
    type="cn.wangban.intake.rectification.closed.v1", topic=RATINGS_TOPIC, key="application_id"
)
class RectificationClosed(Event):
    """The department visited the applicant back (回访) and closed the rectification case."""

    rectification_id: str
    application_id: str
    department: str
    closed_at: Timestamp
    closed_by: str
    due_date: CalendarDate
    on_time: bool
    """Closed no later than the due date."""
