"""How one node's parts fit together: access control, the event hub and its keepers, the
mesh parts, and the facade over them all.

The daemon calls :func:`assemble` once its database, mesh guard and local executor exist;
the in-process test harness calls the same function, so the node it tests is put
together exactly as a running one is.
"""

from __future__ import annotations

from collections.abc import Mapping

from edgecoder.access import AccessControl
from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.daemon.mesh_runtime import MeshRuntime
from edgecoder.events import EventHub
from edgecoder.inference.executor import LocalExecutor
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.services import Services
from edgecoder.storage.database import Database
from edgecoder.storage.receipt_keeper import ReceiptKeeper

__all__ = ("assemble",)


async def assemble(
    *,
    config: Config,
    identity: NodeIdentity,
    clock: Clock,
    database: Database,
    guard: MeshGuard,
    executor: LocalExecutor,
    extensions: bool,
    listeners: Mapping[str, str],
    starts: int,
    mesh_port: int,
    api_port: int,
) -> tuple[Services, MeshRuntime]:
    """The complete facade and the mesh runtime behind it (built, not started).

    The caller closes the runtime (:meth:`MeshRuntime.aclose`) when done with it.
    """
    api = config.api
    access = AccessControl(
        database,
        clock,
        rate_per_min=api.rate_limit_per_min,
        burst=api.rate_limit_burst,
        auth_failure_burst=api.auth_failure_burst,
        auth_failures_per_min=api.auth_failures_per_min,
    )
    events = EventHub()
    ReceiptKeeper(database, clock).attach(events)
    runtime = await MeshRuntime.build(
        config=config,
        identity=identity,
        clock=clock,
        database=database,
        guard=guard,
        events=events,
        executor=executor,
        mesh_port=mesh_port,
        api_port=api_port,
    )
    services = Services(
        config=config,
        identity=identity,
        database=database,
        clock=clock,
        access=access,
        mesh_guard=guard,
        extensions=extensions,
        executor=executor,
        mesh=runtime.node,
        router=runtime.router,
        origin=runtime.origin,
        worker=runtime.worker,
        economy=runtime.economy,
        events=events,
        listeners=listeners,
        starts=starts,
        configured=(runtime,),
    )
    return services, runtime
