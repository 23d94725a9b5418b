"""A node's own capability advert says what this machine holds and how busy it is, never
what its peers hold (the node would otherwise claim offers for models it cannot run)."""

from __future__ import annotations

import pytest

from edgecoder.control import Control
from tests.adverts import advert, model
from tests.inprocess import MODEL, InProcessNode

pytestmark = pytest.mark.anyio


async def test_the_advert_lists_only_local_models_while_the_api_lists_the_peers_too(
    node: InProcessNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = node.services.mesh
    monkeypatch.setattr(mesh, "adverts", lambda: [("p" * 32, advert(model("peer-only:7b")))])
    # Clients see every model the mesh can serve...
    assert [m.name for m in await node.services.list_models()] == [MODEL, "peer-only:7b"]
    # ...but peers are told only what runs here.
    await mesh.publish_advert()
    assert mesh.advert is not None
    assert [m.name for m in mesh.advert.models] == [MODEL]
    assert mesh.advert.backend == "scripted"


async def test_the_owner_using_the_machine_is_advertised_at_once(node: InProcessNode) -> None:
    control = Control(node.services, lambda: node.services.config)
    await control.set_owner_busy(True)
    assert node.services.mesh.advert is not None
    assert node.services.mesh.advert.owner_busy
    await control.set_owner_busy(False)
    assert not node.services.mesh.advert.owner_busy
    await control.aclose()
