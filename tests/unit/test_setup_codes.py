"""Setup codes: their shape, how typed text is read, and the verifier's checks."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from edgecoder.security.setup_codes import (
    ALPHABET,
    check_code,
    generate_code,
    make_verifier,
    normalize_code,
)


def test_a_code_is_twelve_crockford_characters_in_three_groups() -> None:
    codes = {generate_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){2}", code), code


def test_typing_slips_read_as_the_code_and_nothing_else_does() -> None:
    assert normalize_code("abcd-efgh-jkmn") == "ABCDEFGHJKMN"
    assert normalize_code("OIL0 1111 2222") == "011011112222"
    for bad in ("", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "ABCD-EFGH-JKMU", "ABCD_EFGH_JKMN"):
        assert normalize_code(bad) is None, bad


@given(st.text(alphabet=ALPHABET, min_size=12, max_size=12), st.binary(min_size=16, max_size=16))
def test_the_verifier_accepts_its_code_and_rejects_any_other(raw: str, salt: bytes) -> None:
    verifier = make_verifier(raw, salt)
    assert check_code(verifier, raw)
    assert check_code(verifier, "-".join((raw[:4], raw[4:8], raw[8:])).lower())
    changed = raw[:-1] + ALPHABET[(ALPHABET.index(raw[-1]) + 1) % len(ALPHABET)]
    assert not check_code(verifier, changed)
    assert not check_code(verifier, "")
    assert not check_code(verifier, raw + "0")


def test_each_verifier_has_its_own_salt() -> None:
    code = generate_code()
    first, second = make_verifier(code), make_verifier(code)
    assert first.salt != second.salt
    assert first.digest != second.digest
    assert code.replace("-", "").encode() not in first.digest + first.salt
