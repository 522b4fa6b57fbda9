"""Conventions every internal HTTP API of the platform follows (one service calling another).

A service calls another as itself (a signed internal token of its service identity in
``Authorization``), and on behalf of the person whose request it is handling: that person goes
along as a second signed internal token in :data:`ACTOR_HEADER`, taken from the verified
identity of the request, never from a request body, so no field can name someone else. With no
request behind the call (a consumer handling an event) no actor is sent. The kit's
``wangban.http.ServiceCalls`` sends both; a callee that records who asked (sharing) reads it.
"""

from __future__ import annotations

from typing import Final

ACTOR_HEADER: Final = "X-Wangban-Actor"
"""A signed internal token of the person a service calls another on behalf of."""
