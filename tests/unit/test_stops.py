"""Stop strings over a stream of text pieces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgecoder.inference.stops import StopScanner


def _run(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(p) for p in pieces) + scanner.flush()
    return out, scanner.stopped


def test_stop_split_across_pieces_is_never_emitted() -> None:
    scanner = StopScanner(["<end_of_turn>"])
    assert scanner.feed("hello <end") == "hello "
    assert scanner.feed("_of") == ""
    assert scanner.feed("_turn> more") == ""
    assert scanner.stopped


def test_false_alarm_is_released() -> None:
    assert _run(["a <en", "joy"], ["<end>"]) == ("a <enjoy", False)


def test_earliest_stop_wins() -> None:
    assert _run(["x STOP2 y STOP1"], ["STOP1", "STOP2"]) == ("x ", True)


def test_no_stops_passes_everything() -> None:
    assert _run(["a", "b"], []) == ("ab", False)


@given(st.text(max_size=60), st.integers(1, 10), st.sampled_from(["##", "\nUser:", "}"]))
def test_matches_cutting_the_whole_text(text: str, step: int, stop: str) -> None:
    pieces = [text[i : i + step] for i in range(0, len(text), step)]
    out, stopped = _run(pieces, [stop])
    index = text.find(stop)
    assert out == (text[:index] if index >= 0 else text)
    assert stopped == (index >= 0)


def test_the_stop_string_found_is_named() -> None:
    scanner = StopScanner(["\n\n", "END"])
    assert scanner.feed("abc EN") == "abc "
    assert scanner.matched == ""
    assert scanner.feed("D more") == ""  # "EN" was held back: it began the stop string
    assert (scanner.stopped, scanner.matched) == (True, "END")
