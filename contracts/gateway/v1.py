"""What the gateway publishes (version 1).

The gateway is where a citizen's WeChat openid is learnt (from WeChat's answer to a login
code); the notification service needs it to send subscription messages. It learns it from
``account.wechat_bound``, published in the login's own transaction, so a login never waits for
(or fails with) the notification service, and a binding is never lost when notify is down.
"""

from __future__ import annotations

from contracts.events import Event, registry

ACCOUNTS_TOPIC = registry.topic(
    "wangban.gateway.accounts",
    partitions=3,
    description=(
        "Mini-program accounts as the gateway learns them: the WeChat openid each logged in "
        "with, for the notification service (encrypted: partners see ciphertext only)."
    ),
    key_description=(
        "A random id per report: an account's reports all say the same, so none needs to "
        "follow another, and no stable account id travels in clear."
    ),
)

ACCOUNT_SUBJECT_CONTEXT = "account.subject"
"""Encryption context of the account id in :class:`AccountWeChatBound`."""
OPENID_CONTEXT = "account.openid"
"""Encryption context of the openid in :class:`AccountWeChatBound`."""


@registry.event(
    type="cn.wangban.gateway.account.wechat_bound.v1",
    topic=ACCOUNTS_TOPIC,
    key="report_id",
)
class AccountWeChatBound(Event):
    """An account logged in with this WeChat openid (reported at every WeChat login).

    The notification service binds the openid to the account to send it subscription
    messages. Both the account id and the openid are encrypted with the platform field key.
    """

    report_id: str
    """A UUID for this report (the Kafka key)."""
    subject_enc: str
    """The account id, encrypted (context ``account.subject``)."""
    openid_enc: str
    """The WeChat openid, encrypted (context ``account.openid``)."""
    logged_in_at: str
