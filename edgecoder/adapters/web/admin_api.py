"""Admin routes on the client listener (an admin API key): the node's own view of the mesh.

``GET /admin/peers`` → ``{"node_id", "network", "peers": [...]}``, one entry per known peer
(see :meth:`MeshNode.peers`); 403 ``admin_required`` for a non-admin key.

``GET /admin/tasks?limit=N`` → ``{"tasks": [...], "runs": [...], "origin", "worker",
"routing"}``: the newest mesh tasks this node offered and runs it did for peers (state,
worker or origin, attempts, claims, tokens, times), and the protocol's counters.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.web.errors import ApiError, guarded
from edgecoder.errors import BadRequestError
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


def admin_routes(services: Services) -> list[Route]:
    """The admin routes over ``services``."""

    async def peers(request: Request) -> Response:
        require_admin(request)
        mesh = services.mesh
        body = {
            "node_id": services.node_id,
            "network": services.config.node.network,
            "peers": mesh.peers() if mesh is not None else [],
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def tasks(request: Request) -> Response:
        require_admin(request)
        raw = request.query_params.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise BadRequestError("'limit' must be a whole number from 1 to 1000", "limit")
        body = {"node_id": services.node_id, **await services.recent_tasks(int(raw))}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def node_id() -> str:
        return services.node_id

    return [
        Route("/admin/peers", guarded(peers, node_id), methods=["GET"]),
        Route("/admin/tasks", guarded(tasks, node_id), methods=["GET"]),
    ]
