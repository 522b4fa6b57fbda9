"""WeChat for the gateway: login (``code2Session``) and real-person face verification
(城市服务人脸核身: ``getVerifyId`` before the mini-program's face check, ``queryVerifyInfo``
after it), over :class:`wangban.wechat.WeChatApi` (the access token the face calls need is
shared by the gateway's workers through its token store).

Every failure is a :class:`~wangban.errors.Problem` with a Chinese detail, so routes let them
propagate. The session key WeChat returns with a login is dropped at once: nothing here needs
it, and a leaked one lets anyone decrypt the user's data. Nothing personal is logged: not the
login code, the secret, the openid, the name or the ID number (errcodes only). The face
check's result is asked of WeChat by the server; the front end's word counts for nothing, and
only ``verify_ret == 10000`` passes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from wangban.errors import (
    Forbidden,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from wangban.wechat import (
    COMMON_ERRCODES,
    TOKEN_ERRORS,
    ExchangeFailed,
    Fault,
    WeChatApi,
    errcode_of,
    fault_of,
)

__all__ = [
    "FACE_PASSED",
    "LOGIN_ERRCODES",
    "FaceResult",
    "FaceStart",
    "FaceVerificationFailed",
    "HighRiskUser",
    "InvalidLoginCode",
    "LoginRateLimited",
    "LoginRefusal",
    "WeChatAuth",
    "WeChatBusy",
    "WeChatSession",
    "WeChatUnavailable",
    "face_cert_hash",
]

logger = logging.getLogger(__name__)

FACE_PASSED: Final = 10000
"""queryVerifyInfo's ``verify_ret`` for 识别成功; every other value is a failure or a cancel."""
CERT_TYPE: Final = "IDENTITY_CARD"
LOGIN_RETRY_AFTER_S: Final = 60
"""code2Session allows each user 100 calls a minute: the next minute is the earliest retry."""
FACE_VERIFY_ID_TTL_S: Final = 3600
"""How long a verify_id lasts when getVerifyId does not say (its documented default)."""

_SERVICE_SIDE_ERRORS: Final = frozenset(
    {*TOKEN_ERRORS, 40013, 40125, 41001, 45009, 45011, 48001, 61024}
)
"""Face-call errcodes that are about our credentials, quota or permissions, not the person:
unavailability, not a failed verification."""


class InvalidLoginCode(Unauthorized):
    type_slug = "invalid-login-code"
    title = "登录凭证无效"


class LoginRateLimited(TooManyRequests):
    type_slug = "wechat-login-rate-limited"
    title = "登录过于频繁"


class HighRiskUser(Forbidden):
    type_slug = "wechat-high-risk-user"
    title = "微信账号存在安全风险"


class WeChatBusy(ServiceUnavailable):
    """WeChat said "system busy" (-1): retrying shortly is expected to work."""

    type_slug = "wechat-busy"
    title = "微信系统繁忙"


class WeChatUnavailable(ServiceUnavailable):
    type_slug = "wechat-unavailable"
    title = "微信服务暂不可用"


class FaceVerificationFailed(ValidationFailed):
    """WeChat refused the face-verification request for this person or verify_id (unknown,
    expired, or not matching what was started): start a new verification."""

    type_slug = "face-verification-failed"
    title = "人脸核身未能完成"


@dataclass(frozen=True)
class LoginRefusal:
    """What we answer when code2Session refuses a login with one errcode."""

    fault: Fault
    problem: type[Problem]
    detail: str
    """Chinese, for the person logging in: what to do next."""


_CODE_INVALID: Final = "登录凭证无效或已过期，请重新登录"
_CODE_USED: Final = "登录凭证已使用过，请重新登录（小程序需重新调用 wx.login 获取新的登录凭证）"
_LOGIN_UNAVAILABLE: Final = "微信登录暂时不可用，请稍后重试"
_LOGIN_REFUSALS_BY_FAULT: Final[Mapping[Fault, LoginRefusal]] = {
    Fault.CLIENT: LoginRefusal(Fault.CLIENT, InvalidLoginCode, _CODE_INVALID),
    Fault.REFUSED: LoginRefusal(
        Fault.REFUSED, HighRiskUser, "微信判定该账号存在安全风险，暂时无法登录"
    ),
    Fault.RATE_LIMITED: LoginRefusal(
        Fault.RATE_LIMITED, LoginRateLimited, "登录过于频繁，请一分钟后再试"
    ),
    Fault.CONFIG: LoginRefusal(Fault.CONFIG, WeChatUnavailable, _LOGIN_UNAVAILABLE),
    # code2Session takes no access token: a token errcode from it is WeChat misbehaving.
    Fault.TOKEN: LoginRefusal(Fault.OUTAGE, WeChatUnavailable, _LOGIN_UNAVAILABLE),
    Fault.OUTAGE: LoginRefusal(Fault.OUTAGE, WeChatUnavailable, _LOGIN_UNAVAILABLE),
}

LOGIN_ERRCODES: Final[Mapping[int, LoginRefusal]] = {
    # Every errcode WeChat shares among its interfaces, by whose fault it is (wangban.wechat)…
    **{code: _LOGIN_REFUSALS_BY_FAULT[fault] for code, fault in COMMON_ERRCODES.items()},
    # …then code2Session's own, documented (40029, 45011, 40226, -1) and observed (40163).
    40029: LoginRefusal(Fault.CLIENT, InvalidLoginCode, _CODE_INVALID),  # unknown or expired
    40163: LoginRefusal(Fault.CLIENT, InvalidLoginCode, _CODE_USED),  # "code been used"
    41008: LoginRefusal(Fault.CLIENT, InvalidLoginCode, _CODE_INVALID),  # code missing
    40226: _LOGIN_REFUSALS_BY_FAULT[Fault.REFUSED],  # high-risk user, login intercepted
    45011: _LOGIN_REFUSALS_BY_FAULT[Fault.RATE_LIMITED],  # 100 calls a minute per user
    -1: LoginRefusal(Fault.OUTAGE, WeChatBusy, "微信系统繁忙，请稍后重试"),  # system busy
}
"""code2Session's errcodes → whose fault → the problem the person gets. A login code is good
once and for 5 minutes, so a used (40163) or stale (40029) one is the client's to replace with a
new ``wx.login`` (401), never an outage; our appid, secret or IP allow-list being wrong is ours
(503, logged at ERROR for operations); an errcode not listed is an outage (503)."""


def login_refusal(errcode: int) -> LoginRefusal:
    """What to answer for a code2Session errcode (:data:`LOGIN_ERRCODES`, else an outage)."""
    refusal = LOGIN_ERRCODES.get(errcode)
    return refusal if refusal is not None else _LOGIN_REFUSALS_BY_FAULT[fault_of(errcode)]


@dataclass(frozen=True)
class WeChatSession:
    """Who WeChat says logged in. (The session key is deliberately not here.)"""

    openid: str
    unionid: str | None

    def __repr__(self) -> str:
        return "WeChatSession(openid=***, unionid=***)"


@dataclass(frozen=True)
class FaceStart:
    verify_id: str
    """For the mini-program's ``wx.requestFacialVerify``, then :meth:`WeChatAuth.face_result`."""
    expires_in: int
    """Seconds the verify_id can start a face check."""


@dataclass(frozen=True)
class FaceResult:
    verify_ret: int
    passed: bool = field(init=False)
    """True only for ``verify_ret == 10000`` (识别成功)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", self.verify_ret == FACE_PASSED)


def face_cert_hash(*, name: str, id_number: str) -> str:
    """The ``cert_hash`` queryVerifyInfo checks against the certificate the verification was
    started with: each of cert_type, cert_name and cert_no in standard base64 (of its UTF-8
    bytes), joined as ``cert_type=…&cert_name=…&cert_no=…``, SHA-256, lowercase hex."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    joined = f"cert_type={b64(CERT_TYPE)}&cert_name={b64(name)}&cert_no={b64(id_number)}"
    return hashlib.sha256(joined.encode()).hexdigest()


class WeChatAuth(WeChatApi):
    """The gateway's WeChat client (keyword-only: ``base_url``, ``appid``, ``secret``,
    ``token_store``, ``timeout_s``, ``transport``, ``clock``; see
    :class:`~wangban.wechat.WeChatApi`)."""

    caller = "gateway"

    # -- login --------------------------------------------------------------------------

    async def code_to_session(self, js_code: str) -> WeChatSession:
        """Exchange the code ``wx.login`` gave the mini-program for the user's openid (and
        unionid when the mini-program is bound to an open-platform account)."""
        if not js_code:
            raise InvalidLoginCode("登录凭证无效或已过期，请重新登录")
        try:
            answer = await self._exchange(
                "/sns/jscode2session",
                None,
                method="GET",
                params={
                    "appid": self.appid,
                    "secret": self._secret.get_secret_value(),
                    "js_code": js_code,
                    "grant_type": "authorization_code",
                },
            )
        except ExchangeFailed:
            raise WeChatUnavailable("微信登录暂时不可用，请稍后重试") from None
        answer.pop("session_key", None)
        errcode = errcode_of(answer)
        if errcode in (None, 0):
            openid = answer.get("openid")
            if not isinstance(openid, str) or not openid:
                logger.warning("wechat jscode2session answered without an openid")
                raise WeChatUnavailable("微信登录暂时不可用，请稍后重试")
            unionid = answer.get("unionid")
            return WeChatSession(
                openid=openid, unionid=unionid if isinstance(unionid, str) and unionid else None
            )
        assert errcode is not None
        refusal = login_refusal(errcode)
        if refusal.fault is Fault.CONFIG:
            # Not the citizen's fault and nothing they can do: operations must fix it.
            logger.error(
                "wechat jscode2session refused our credentials or configuration: errcode %s; "
                "check WANGBAN_WECHAT_APPID, WANGBAN_WECHAT_APP_SECRET and WeChat's IP allow-list",
                errcode,
            )
        elif refusal.fault in (Fault.CLIENT, Fault.REFUSED):
            logger.info("wechat jscode2session refused the login: errcode %s", errcode)
        else:
            logger.warning("wechat jscode2session refused: errcode %s", errcode)
        headers = (
            {"Retry-After": str(LOGIN_RETRY_AFTER_S)}
            if refusal.fault is Fault.RATE_LIMITED
            else None
        )
        raise refusal.problem(refusal.detail, headers=headers)

    # -- face verification --------------------------------------------------------------

    async def start_face_verification(
        self, *, openid: str, name: str, id_number: str, out_seq_no: str
    ) -> FaceStart:
        """getVerifyId: a verify_id for this person's face check, bound to their openid and
        certificate. ``out_seq_no`` is our own reference of this verification."""
        answer = await self._face_call(
            "/cityservice/face/identify/getverifyid",
            {
                "out_seq_no": out_seq_no,
                "cert_info": {"cert_type": CERT_TYPE, "cert_name": name, "cert_no": id_number},
                "openid": openid,
            },
        )
        verify_id = answer.get("verify_id")
        if not isinstance(verify_id, str) or not verify_id:
            logger.warning("wechat getverifyid answered without a verify_id")
            raise WeChatUnavailable("微信人脸核身暂时不可用，请稍后重试")
        expires_in = answer.get("expires_in")
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            expires_in = FACE_VERIFY_ID_TTL_S
        return FaceStart(verify_id=verify_id, expires_in=expires_in)

    async def face_result(
        self, *, verify_id: str, out_seq_no: str, openid: str, name: str, id_number: str
    ) -> FaceResult:
        """queryVerifyInfo: how the face check of ``verify_id`` went, as WeChat saw it. The
        same openid, out_seq_no and certificate as at the start must be given."""
        answer = await self._face_call(
            "/cityservice/face/identify/queryverifyinfo",
            {
                "verify_id": verify_id,
                "out_seq_no": out_seq_no,
                "cert_hash": face_cert_hash(name=name, id_number=id_number),
                "openid": openid,
            },
        )
        verify_ret = answer.get("verify_ret")
        if not isinstance(verify_ret, int) or isinstance(verify_ret, bool):
            logger.warning("wechat queryverifyinfo answered without a verify_ret")
            raise WeChatUnavailable("微信人脸核身暂时不可用，请稍后重试")
        logger.info("wechat face verification result: verify_ret %s", verify_ret)
        return FaceResult(verify_ret=verify_ret)

    async def _face_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body, ensure_ascii=False).encode()
        try:
            answer, _token = await self._call_with_token(path, payload)
        except ExchangeFailed:
            raise WeChatUnavailable("微信人脸核身暂时不可用，请稍后重试") from None
        errcode = errcode_of(answer)
        if errcode in (None, 0):
            return answer
        logger.warning("wechat %s refused: errcode %s", path, errcode)
        if errcode == -1:
            raise WeChatBusy("微信系统繁忙，请稍后重试")
        if errcode in _SERVICE_SIDE_ERRORS:
            raise WeChatUnavailable("微信人脸核身暂时不可用，请稍后重试")
        raise FaceVerificationFailed(
            f"微信未受理本次人脸核身（错误码 {errcode}），请重新发起", extra={"errcode": errcode}
        )
