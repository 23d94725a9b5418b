"""Admin routes on the client listener (an admin API key): the node's own view of the mesh.

``GET /admin/peers`` → ``{"node_id", "network", "peers": [...]}``, one entry per known peer
(see :meth:`MeshNode.peers`); 403 ``admin_required`` for a non-admin key.

``GET /admin/tasks?limit=N`` → ``{"tasks": [...], "runs": [...], "origin", "worker",
"routing"}``: the newest mesh tasks this node offered and runs it did for peers (state,
worker or origin, attempts, claims, tokens, times), and the protocol's counters.

The credit ledger (``docs/ledger.md`` §9): ``GET /admin/ledger?limit=N&before=SEQ`` (this
node's credits and newest entries), ``GET /admin/ledger/peers`` (every peer's gossiped
head), ``GET /admin/ledger/verify`` (every chain held, verified from its first entry),
``POST /admin/ledger/vouch {"node"}`` (a vouch for a node's allowance; ``409`` with the
reason's code when this node may not vouch for it).

The operator's operations, the same as D-Bus offers (one implementation:
:class:`~edgecoder.control.Control`): ``GET /admin/status``, ``GET /admin/models``,
``POST /admin/models/pull {"model"}`` (202, a job), ``GET /admin/models/jobs/{id}``,
``DELETE /admin/models/{name}``, ``PUT /admin/models/default {"model"}``,
``PUT /admin/mode {"mode"}``, ``PUT /admin/owner-busy {"busy"}``, ``GET /admin/keys``,
``POST /admin/keys {"name", "admin"}``, ``DELETE /admin/keys/{name}``,
``PUT /admin/keys/{name}/budget {"budget_mc"}`` (null: no limit), ``POST /admin/reload``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.web.dialects import OPENAI
from edgecoder.adapters.web.errors import ApiError
from edgecoder.adapters.web.requests import read_json, whole_number
from edgecoder.adapters.web.routing import RouteMaker
from edgecoder.control import Control
from edgecoder.errors import BadRequestError, LedgerError
from edgecoder.services import Services

__all__ = ("admin_routes", "require_admin")


def require_admin(request: Request) -> None:
    """Refuse a caller whose key is not an admin key.

    :raises ApiError: 403 ``admin_required``.
    """
    principal = request.state.principal
    if not principal.admin:
        raise ApiError(
            403,
            f"API key '{principal.name}' is not an admin key "
            "(create one with 'edgecoder keys create NAME --admin')",
            "admin_required",
        )


_BODY_LIMIT = 64 * 1024


def admin_routes(
    services: Services, route: RouteMaker, control: Control | None = None
) -> list[Route]:
    """The admin routes over ``services`` (and ``control``, when given)."""

    async def peers(request: Request) -> Response:
        require_admin(request)
        body = {
            "node_id": services.node_id,
            "network": services.config.node.network,
            "peers": [peer.as_json() for peer in services.mesh.peers()],
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def tasks(request: Request) -> Response:
        require_admin(request)
        limit = whole_number(request.query_params.get("limit", "50"), "limit", 1, 1000)
        body = {"node_id": services.node_id, **(await services.recent_tasks(limit)).as_json()}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def ledger(request: Request) -> Response:
        require_admin(request)
        params = request.query_params
        limit = whole_number(params.get("limit", "50"), "limit", 1, 1000)
        before = params.get("before")
        below = whole_number(before, "before", 1, 2**53) if before is not None else None
        body = await services.ledger_view(limit, below)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def ledger_peers(request: Request) -> Response:
        require_admin(request)
        return JSONResponse(await services.ledger_peers(), headers={"Cache-Control": "no-store"})

    async def ledger_verify(request: Request) -> Response:
        require_admin(request)
        return JSONResponse(await services.verify_ledger(), headers={"Cache-Control": "no-store"})

    async def vouch(request: Request) -> Response:
        require_admin(request)
        fields = await read_json(request, _BODY_LIMIT)
        try:
            body = await services.vouch(fields.text("node", required=True) or "")
        except LedgerError as exc:
            # The node may not vouch now (no standing, quota used...): a state, not a fault.
            raise ApiError(409, str(exc), exc.code) from None
        return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})

    routes = [
        route("/admin/peers", peers, OPENAI, ["GET"]),
        route("/admin/tasks", tasks, OPENAI, ["GET"]),
        route("/admin/ledger", ledger, OPENAI, ["GET"]),
        route("/admin/ledger/peers", ledger_peers, OPENAI, ["GET"]),
        route("/admin/ledger/verify", ledger_verify, OPENAI, ["GET"]),
        route("/admin/ledger/vouch", vouch, OPENAI, ["POST"]),
    ]
    if control is not None:
        routes += _control_routes(control, route)
    return routes


def _control_routes(control: Control, route: RouteMaker) -> list[Route]:
    def admin(
        path: str, handler: Callable[[Request], Awaitable[Any]], method: str, status: int = 200
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            require_admin(request)
            body = await handler(request)
            return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

        return route(path, endpoint, OPENAI, [method])

    async def body_of(request: Request) -> Any:
        return await read_json(request, _BODY_LIMIT)

    async def status(request: Request) -> Any:
        return control.status()

    async def models(request: Request) -> Any:
        return {"models": await control.models()}

    async def pull(request: Request) -> Any:
        fields = await body_of(request)
        return control.pull_model(fields.text("model", required=True) or "").as_dict()

    async def job(request: Request) -> Any:
        job_id = whole_number(request.path_params["job"], "job", 0, 2**63 - 1)
        return control.job(job_id).as_dict()

    async def remove(request: Request) -> Any:
        name = request.path_params["name"]
        await control.remove_model(name)
        return {"removed": name}

    async def default(request: Request) -> Any:
        fields = await body_of(request)
        name = fields.text("model", required=True) or ""
        await control.set_default_model(name)
        return {"default_model": name}

    async def mode(request: Request) -> Any:
        fields = await body_of(request)
        value = fields.text("mode", required=True) or ""
        await control.set_mode(value)
        return {"mode": value}

    async def owner_busy(request: Request) -> Any:
        fields = await body_of(request)
        if not isinstance(fields.data.get("busy"), bool):
            raise BadRequestError("'busy' must be true or false", "busy")
        await control.set_owner_busy(fields.data["busy"])
        return {"owner_busy": fields.data["busy"]}

    async def keys(request: Request) -> Any:
        return {"keys": await control.list_api_keys()}

    async def create_key(request: Request) -> Any:
        fields = await body_of(request)
        name = fields.text("name", required=True) or ""
        key = await control.create_api_key(name, fields.flag("admin"))
        return {"name": name, "key": key}

    async def revoke_key(request: Request) -> Any:
        name = request.path_params["name"]
        await control.revoke_api_key(name)
        return {"revoked": name}

    async def budget(request: Request) -> Any:
        fields = await body_of(request)
        if "budget_mc" not in fields.data:  # null is a value here: no limit
            raise BadRequestError(
                "'budget_mc' is required: a whole number of millicredits, or null for no limit",
                "budget_mc",
            )
        amount = fields.integer("budget_mc", minimum=0)
        return await control.set_api_key_budget(request.path_params["name"], amount)

    async def reload(request: Request) -> Any:
        return await control.reload()

    return [
        admin("/admin/status", status, "GET"),
        admin("/admin/models", models, "GET"),
        admin("/admin/models/pull", pull, "POST", 202),
        admin("/admin/models/jobs/{job}", job, "GET"),
        admin("/admin/models/default", default, "PUT"),
        admin("/admin/models/{name:path}", remove, "DELETE"),
        admin("/admin/mode", mode, "PUT"),
        admin("/admin/owner-busy", owner_busy, "PUT"),
        admin("/admin/keys", keys, "GET"),
        admin("/admin/keys", create_key, "POST", 201),
        admin("/admin/keys/{name}", revoke_key, "DELETE"),
        admin("/admin/keys/{name}/budget", budget, "PUT"),
        admin("/admin/reload", reload, "POST"),
    ]
