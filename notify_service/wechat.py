"""WeChat mini-program subscription messages (订阅消息):
``POST /cgi-bin/message/subscribe/send?access_token=…`` (subscribeMessage.send), over
:class:`wangban.wechat.WeChatApi` (the access token, shared by every worker through a token
store, and replaced once when WeChat rejects it).

Privacy: the openid and the token never appear in a :class:`~notify_service.channels.SendResult`
or in our logs (we log the errcode only).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final

from notify_service.channels import SendResult
from wangban.wechat import TOKEN_ERRORS, ExchangeFailed, WeChatApi, errcode_of, scrub

__all__ = ["WeChatClient"]

logger = logging.getLogger(__name__)

_TEMPORARY: Final = {
    -1: "微信系统繁忙，请稍后重试（-1）",
    45009: "微信接口调用次数已达每日上限（45009）",
    45011: "微信接口调用过于频繁，请稍后重试（45011）",
}
_PERMANENT: Final = {
    40003: "openid 无效：该用户不是本小程序的用户（40003）",
    40037: "订阅消息模板 ID 无效（40037）",
    41030: "跳转页面 page 无效：页面不存在或小程序尚未发布该页面（41030）",
}
# 47003 names the offending keyword as "data.<key>.value" (e.g. "argument invalid!
# data.thing1.value invalid"); the key is what staff must fix in the template mapping.
_FIELD_IN_ERRMSG: Final = re.compile(r"\bdata\.([A-Za-z0-9_]+)\.value\b")


class WeChatClient(WeChatApi):
    """:class:`~notify_service.channels.WeChatChannel` against WeChat's server API."""

    caller = "notify"

    async def send_subscription(
        self,
        *,
        openid: str,
        template_id: str,
        page: str | None,
        data: dict[str, str],
        miniprogram_state: str,
        lang: str,
    ) -> SendResult:
        body: dict[str, Any] = {"touser": openid, "template_id": template_id}
        if page is not None:
            body["page"] = page
        body["data"] = {key: {"value": value} for key, value in data.items()}
        body["miniprogram_state"] = miniprogram_state
        body["lang"] = lang
        payload = json.dumps(body, ensure_ascii=False).encode()

        try:
            answer, token = await self._call_with_token("/cgi-bin/message/subscribe/send", payload)
        except ExchangeFailed as exc:
            return self._technical(exc.detail, code=exc.code)
        errcode = errcode_of(answer)
        if errcode in TOKEN_ERRORS:
            return self._technical(
                f"刷新 access_token 后微信仍拒绝该凭证（{errcode}）", code=str(errcode)
            )
        return self._interpret(errcode, answer, openid=openid, token=token)

    # -- answers ------------------------------------------------------------------------

    def _interpret(
        self, errcode: int | None, answer: dict[str, Any], *, openid: str, token: str
    ) -> SendResult:
        if errcode in (None, 0):
            msgid = answer.get("msgid")
            ref = str(msgid) if msgid is not None and not isinstance(msgid, bool) else None
            return SendResult(outcome="delivered", provider_ref=ref)
        assert errcode is not None
        code = str(errcode)
        logger.warning("wechat subscription message refused: errcode %s", errcode)
        if errcode == 43101:
            return SendResult(
                outcome="no-consent",
                code=code,
                detail="用户未订阅该消息模板、订阅次数已用完或已拒收（43101）",
            )
        if errcode == 47003:
            errmsg = answer.get("errmsg")
            match = _FIELD_IN_ERRMSG.search(errmsg) if isinstance(errmsg, str) else None
            if match is None:
                return SendResult(
                    outcome="permanent-failure",
                    code=code,
                    detail="模板数据不符合微信对模板字段的要求（47003）",
                )
            name = match.group(1)
            return SendResult(
                outcome="permanent-failure",
                code=code,
                field=name,
                detail=f"模板字段 {name} 的内容不符合微信对该类字段的要求（47003）",
            )
        if errcode in _TEMPORARY:
            return SendResult(outcome="temporary-failure", code=code, detail=_TEMPORARY[errcode])
        if errcode in _PERMANENT:
            return SendResult(outcome="permanent-failure", code=code, detail=_PERMANENT[errcode])
        errmsg = scrub(answer.get("errmsg"), openid=openid, token=token)
        return SendResult(
            outcome="permanent-failure",
            code=code,
            detail=f"微信拒绝发送（错误码 {errcode}）" + (f"：{errmsg}" if errmsg else ""),
        )

    def _technical(self, detail: str, *, code: str | None) -> SendResult:
        return SendResult(outcome="technical-failure", code=code, detail=detail)
