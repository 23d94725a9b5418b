"""The claim routes on the client listener: how the owner of a fresh node takes it over.

``GET /setup`` → 200 ``{"setup": "open", "node_id"}`` while the node waits for its owner.
``POST /setup {"code", "name"?}`` → 201 ``{"name", "key", "admin": true, "node_id"}``:
the setup code shown on the box's console buys the first admin key (``name`` defaults to
``admin``). Neither needs an API key: nobody has one yet.

Once claimed (or on a node that never made a setup code, such as a developer's), both
answer 404 ``not_found``, as a path that does not exist. A wrong code is 403
``invalid_setup_code``; too many of them 429 with ``Retry-After`` (see
:mod:`edgecoder.claim`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.web.dialects import OPENAI
from edgecoder.adapters.web.errors import ApiError
from edgecoder.adapters.web.requests import read_json
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.claim import DEFAULT_NAME, Claim
from edgecoder.errors import SetupError
from edgecoder.services import Services

__all__ = ("setup_routes",)

_BODY_LIMIT = 4096
_NO_STORE = {"Cache-Control": "no-store"}


def _closed() -> ApiError:
    return ApiError(404, "no setup is open on this node: it has an owner", "not_found")


def setup_routes(services: Services, route: RouteMaker) -> list[Route]:
    """``GET`` and ``POST /setup`` over the node's data directory and access control."""
    claim = Claim(services.config.node.data_dir, services.access, services.clock)

    async def state(request: Request) -> Response:
        if not await claim.is_open():
            raise _closed()
        return JSONResponse({"setup": "open", "node_id": services.node_id}, headers=_NO_STORE)

    async def take_over(request: Request) -> Response:
        if not await claim.is_open():
            raise _closed()
        fields = await read_json(request, _BODY_LIMIT)
        code = fields.text("code", required=True) or ""
        name = fields.text("name") or DEFAULT_NAME
        address = request.client.host if request.client else "unknown"
        try:
            key = await claim.claim(code, name, address)
        except SetupError as exc:
            if exc.code == "setup_closed":
                raise _closed() from None
            raise ApiError(403, str(exc), exc.code, "code") from None
        body = {"name": name, "key": key, "admin": True, "node_id": services.node_id}
        return JSONResponse(body, status_code=201, headers=_NO_STORE)

    return [
        route("/setup", state, OPENAI, ["GET"], public=True),
        route("/setup", take_over, OPENAI, ["POST"], public=True),
    ]
