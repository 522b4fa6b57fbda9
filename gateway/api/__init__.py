"""Routes of the gateway, under ``/api/v1``, one module per area: parse, authenticate,
authorise, call, return.

Authentication happens here and nowhere else: a client's access token becomes the
:class:`~wangban.auth.Identity` the services receive (as the internal token, :mod:`.deps`). Most
routes pass through to the service that owns the data and return its answer unchanged (the
table in :mod:`.passthrough`); a few aggregate (``/home``) or translate (``POST /applications``
names the item by code and the applicant by the logged-in account). Each service authorises the
person again. What a route decides beyond that lives in the gateway's domain modules
(:mod:`gateway.accounts`, :mod:`gateway.applying`, :mod:`gateway.home`).
"""

API = "/api/v1"
