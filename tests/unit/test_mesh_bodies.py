"""Interface selection, the advertised host, and the shape checks of peer records and adverts."""

from __future__ import annotations

import pytest

from edgecoder.config.model import EXCLUDED_INTERFACES
from edgecoder.errors import RecordError
from edgecoder.mesh.advert import size_class
from edgecoder.mesh.interfaces import LanAddress, advertise_host, select, url_for
from edgecoder.mesh.peer_info import parse_advert, parse_peer, peer_body
from edgecoder.security.identity import NodeIdentity
from edgecoder.wire.records import SignedRecord, sign_record


@pytest.mark.parametrize(
    ("name", "used"),
    [("eth0", True), ("wlan0", True), ("enp3s0", True), ("lo", False), ("docker0", False),
     ("veth12ab", False), ("br-1f2e", False), ("virbr0", False), ("wg0", False)],
)  # fmt: skip
def test_default_interfaces_are_real_lan_ones(name: str, used: bool) -> None:
    assert select(name, (), EXCLUDED_INTERFACES) is used


def test_an_explicit_list_overrides_the_exclusions() -> None:
    assert select("veth0", ("veth*",), EXCLUDED_INTERFACES)
    assert not select("eth0", ("veth*",), EXCLUDED_INTERFACES)


def test_advertised_host() -> None:
    lan = [LanAddress("eth0", "fe80::1", 6, 2), LanAddress("eth0", "10.0.0.5", 4)]
    assert advertise_host("", "0.0.0.0", sorted(lan, key=lambda a: a.version)) == "10.0.0.5"
    assert advertise_host("box.lan", "0.0.0.0", lan) == "box.lan"
    assert advertise_host("", "10.0.0.9", lan) == "10.0.0.9"
    assert advertise_host("", "::", [LanAddress("eth0", "fe80::1", 6, 2)]) == "127.0.0.1"
    assert url_for("fd00::2", 4301) == "http://[fd00::2]:4301"


def test_size_classes() -> None:
    assert [size_class(n) for n in (0, 300 << 20, 2 << 30, 8 << 30, 20 << 30, 70 << 30)] == [
        "?", "xs", "s", "m", "l", "xl"]  # fmt: skip


def _record(kind: str, body: dict[str, object]) -> SignedRecord:
    return sign_record(NodeIdentity.generate(), kind, 1, body, 0, 1000)


def test_peer_body_round_trips_and_bad_ones_are_refused() -> None:
    body = peer_body("http://10.0.0.5:4301", ["10.0.0.5"], 4304, "default", "0.1.0")
    info = parse_peer(_record("peer", body))
    assert (info.url, info.api_port, info.network) == ("http://10.0.0.5:4301", 4304, "default")
    for bad in ({**body, "url": "ftp://x"}, {**body, "api_port": 0}, {**body, "addrs": "x"},
                {**body, "network": 3}):  # fmt: skip
        with pytest.raises(RecordError) as caught:
            parse_peer(_record("peer", bad))
        assert caught.value.code == "bad_body"


def test_advert_shape_is_checked() -> None:
    good = {"models": [{"name": "m", "digest": "d", "size_class": "xs", "context_length": 2048,
                        "size_bytes": 1, "loaded": False}],
            "backend": "llamacpp", "device_class": "x86_64", "ram_mb": 1, "prefill_tps": 1,
            "decode_tps": 1, "slots": 1, "queue_depth": 0, "load_pct": 10, "owner_busy": False,
            "price_pct": 100}  # fmt: skip
    assert parse_advert(_record("advert", good)).as_body() == good
    for bad in ({**good, "slots": -1}, {**good, "owner_busy": 1}, {**good, "models": [3]},
                {**good, "backend": None}):  # fmt: skip
        with pytest.raises(RecordError) as caught:
            parse_advert(_record("advert", bad))
        assert caught.value.code == "bad_body"
