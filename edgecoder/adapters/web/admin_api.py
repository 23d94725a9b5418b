"""Admin routes on the client listener (an admin API key): the node's own view of the mesh.

``GET /admin/peers`` → ``{"node_id", "network", "peers": [...]}``, one entry per known peer
(see :meth:`MeshNode.peers`); 403 ``admin_required`` for a non-admin key.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecoder.adapters.web.errors import ApiError, guarded
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

    return [Route("/admin/peers", guarded(peers, lambda: services.node_id), methods=["GET"])]
