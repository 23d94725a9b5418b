"""Node identity: derivation of node_id, the key file, sealing under a passphrase."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from edgecoder.errors import IdentityError, PassphraseError
from edgecoder.security.identity import NodeIdentity, derive_node_id, is_node_id
from edgecoder.speedups import signing
from edgecoder.storage.keystore import (
    KEY_FILE,
    load_identity,
    load_or_create_identity,
    read_public,
)


def test_node_id_is_derived_from_the_public_key() -> None:
    identity = NodeIdentity(bytes(range(32)))
    assert identity.node_id == derive_node_id(identity.public_key)
    assert is_node_id(identity.node_id)
    assert NodeIdentity(bytes(range(32))).node_id == identity.node_id
    assert NodeIdentity(bytes(32)).node_id != identity.node_id
    # Fixed vector so another implementation can check its derivation.
    assert identity.public_key.hex() == (
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    )
    assert identity.node_id == "2em3lh5rvvr7huixdb5lyweitcywjtzw"


def test_identity_signs_and_hides_its_secret() -> None:
    identity = NodeIdentity.generate()
    assert signing.verify(identity.public_key, b"m", identity.sign(b"m"))
    assert identity.seed.hex() not in repr(identity)
    assert identity.node_id in repr(identity)


def test_created_once_then_reused(tmp_path: Path) -> None:
    first, created = load_or_create_identity(tmp_path, None)
    assert created
    again, created_again = load_or_create_identity(tmp_path, None)
    assert not created_again
    assert again.node_id == first.node_id
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert read_public(tmp_path).node_id == first.node_id
    assert not list(tmp_path.glob(".*.tmp"))


def test_sealed_key_needs_the_right_passphrase(tmp_path: Path) -> None:
    identity, _ = load_or_create_identity(tmp_path, b"correct horse")
    record = json.loads((tmp_path / KEY_FILE).read_text())
    assert record["sealed"] is True
    assert "seed" not in record
    assert identity.seed.hex() not in (tmp_path / KEY_FILE).read_text()
    public = read_public(tmp_path)
    assert (public.node_id, public.sealed) == (identity.node_id, True)
    assert load_identity(tmp_path, b"correct horse").node_id == identity.node_id
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_identity(tmp_path, b"battery staple")
    with pytest.raises(PassphraseError, match="is sealed"):
        load_identity(tmp_path, None)


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path, None)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(IdentityError, match="readable by others"):
        load_identity(tmp_path, None)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(public_key="00" * 32), "disagree"),
        (lambda r: r.update(seed="!!"), "not base64"),
        (lambda r: r.update(format="other"), "not an EdgeCoder node key"),
        (lambda r: r.update(version=2), "not an EdgeCoder node key"),
        (lambda r: r.pop("seed"), "seed is missing"),
    ],
)
def test_corrupt_key_files_are_refused(tmp_path: Path, mutate: object, message: str) -> None:
    load_or_create_identity(tmp_path, None)
    path = tmp_path / KEY_FILE
    record = json.loads(path.read_text())
    mutate(record)  # type: ignore[operator]
    path.write_text(json.dumps(record))
    with pytest.raises(IdentityError, match=message):
        load_identity(tmp_path, None)


def test_garbage_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"\x00garbage")
    path.chmod(0o600)
    with pytest.raises(IdentityError, match="not JSON"):
        load_or_create_identity(tmp_path, None)
