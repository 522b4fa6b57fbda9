"""What intake refuses, as problem types (each a class: ``wangban.errors``)."""

from __future__ import annotations

from wangban.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed


class ApplicationNotFound(NotFound):
    """Also what another person's application answers: its existence is not disclosed."""

    type_slug = "application-not-found"
    title = "找不到该申请"


class ItemVersionNotAvailable(NotFound):
    type_slug = "item-version-not-available"
    title = "该事项版本不存在或已停止受理"


class ItemNotFound(NotFound):
    """No published item has this implementing code, or its item was withdrawn: the citizen's
    own doing, answered as the catalogue answers it (a copy of intake's that lags the catalogue
    is not: the catalog is asked first)."""

    type_slug = "item-not-found"
    title = "找不到该事项"

    def __init__(self) -> None:
        super().__init__("该事项不存在或已停止受理，请在办事指南中重新选择事项")


class IdempotencyKeyReused(ValidationFailed):
    """The Idempotency-Key came with another request before (IETF Idempotency-Key draft: 422):
    answering the old application would silently drop what changed."""

    type_slug = "idempotency-key-reused"
    title = "Idempotency-Key 已用于另一份申请"


class InvalidForm(ValidationFailed):
    type_slug = "invalid-application-form"
    title = "申请表填写有误"


class MaterialsIncomplete(ValidationFailed):
    type_slug = "materials-incomplete"
    title = "申请材料不齐全"


class TransitionNotAllowed(Conflict):
    type_slug = "transition-not-allowed"
    title = "当前办理状态不允许此操作"


class AlreadySubmitted(Conflict):
    type_slug = "already-submitted"
    title = "该申请已提交，请勿重复提交"


class InvalidApplicant(ValidationFailed):
    type_slug = "invalid-applicant"
    title = "申请人证件号码有误"


class ScopeNotAllowed(Forbidden):
    type_slug = "outside-service-scope"
    title = "该事项不支持在本窗口办理"


class AlreadyGranted(Conflict):
    type_slug = "already-granted"
    title = "该事项已获准，不能重复申请"


class ApplicationOpen(Conflict):
    type_slug = "application-open"
    title = "该事项已有正在办理的申请"


class IdempotencyKeyMissing(BadRequest):
    type_slug = "idempotency-key-required"
    title = "提交申请需要 Idempotency-Key 请求头"


class ApplicantMismatch(Forbidden):
    type_slug = "applicant-mismatch"
    title = "只能以本人身份申请"


class ApplicantNotVerified(ValidationFailed):
    """The name does not match the register for the ID number — or the register has no such
    number: one answer for both, so the check tells a clerk nothing about who exists."""

    type_slug = "applicant-not-verified"
    title = "申请人身份核验未通过"


class WindowIntakeIncomplete(ValidationFailed):
    """A window intake the form or materials do not complete. One answer whichever material or
    prefilled field was missing, so that trying ID numbers at a window cannot tell which
    department holds a record of whom (the 201/422-with-names oracle)."""

    type_slug = "window-intake-incomplete"
    title = "申请表或材料不完整，未能受理"


class FileRejected(ValidationFailed):
    type_slug = "file-rejected"
    title = "文件不符合要求"


class FileNotFound(ApplicationNotFound):
    type_slug = "file-not-found"
    title = "找不到该文件"
