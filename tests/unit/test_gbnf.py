"""JSON Schema → GBNF, checked without llama.cpp: integer ranges, literals, tool grammars.

Whether llama.cpp accepts what the grammars say (and refuses what they refuse) is checked
token by token on the real vocabulary in ``tests/integration/test_tool_grammar.py``.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from edgecoder.adapters.backends.gbnf import GrammarBuilder, literal
from edgecoder.adapters.backends.tool_grammar import call_grammar
from edgecoder.inference.tool_calls import GENERIC, MISTRAL
from edgecoder.inference.types import ToolSpec

BOUND = st.one_of(st.none(), st.integers(min_value=-(10**6), max_value=10**6))


def _integer_regex(schema: dict[str, object]) -> re.Pattern[str]:
    """The integer rule as a regex: the range rules use only digits, classes and groups."""
    builder = GrammarBuilder()
    builder.schema(schema, "n")
    body = builder.text().splitlines()[-1].split(" ::= ", 1)[1]
    if body == "integer":
        body = builder.text().split("integer ::= ", 1)[1].splitlines()[0]
    body = body.replace('"-"', "-").replace('"0"', "0")
    body = re.sub(r'"(\d)"', r"\1", body).replace(" ", "")
    return re.compile(f"^(?:{body})$")


@given(BOUND, BOUND, st.integers(min_value=-(10**7), max_value=10**7))
def test_integer_bounds_are_exact(low: int | None, high: int | None, n: int) -> None:
    if low is not None and high is not None and low > high:
        low, high = high, low
    schema: dict[str, object] = {"type": "integer"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    inside = (low is None or n >= low) and (high is None or n <= high)
    assert bool(_integer_regex(schema).match(str(n))) == inside


def test_exclusive_and_fractional_bounds() -> None:
    rule = _integer_regex({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})
    assert [n for n in range(-5, 15) if rule.match(str(n))] == list(range(1, 10))
    rule = _integer_regex({"type": "integer", "minimum": 0.5, "maximum": 3.5})
    assert [n for n in range(-5, 15) if rule.match(str(n))] == [1, 2, 3]
    draft4 = _integer_regex({"type": "integer", "minimum": 1, "exclusiveMinimum": True,
                             "maximum": 4})  # fmt: skip
    assert [n for n in range(-5, 15) if draft4.match(str(n))] == [2, 3, 4]
    assert not rule.match("01")
    assert not rule.match("-0")


def test_literals_escape_what_gbnf_reads_specially() -> None:
    assert literal('say "hi"\\\n\tnow\x01é') == '"say \\"hi\\"\\\\\\n\\tnow\\x01é"'


def test_objects_keep_the_schema_order_with_optional_properties() -> None:
    builder = GrammarBuilder()
    name = builder.schema(
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"},
                                          "c": {"type": "boolean"}}, "required": ["b"]},
        "args",
    )  # fmt: skip
    grammar = builder.text()
    assert f"{name} ::= " in grammar
    # b is required: every way through the object passes it
    assert 'args-head0 ::= "\\"a\\"" ws ":" ws args-a ws args-tail1 | args-head1' in grammar
    assert 'args-head1 ::= "\\"b\\"" ws ":" ws args-b ws args-tail2' in grammar
    assert 'args-tail2 ::= ("," ws "\\"c\\"" ws ":" ws args-c ws)?' in grammar


def test_refs_may_recurse() -> None:
    builder = GrammarBuilder()
    builder.schema(
        {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}},
        "tree",
    )  # fmt: skip
    grammar = builder.text()
    assert "tree ::= def-node" in grammar
    assert "tree-item ::= def-node" in grammar or "def-node" in grammar.split("children")[1]


def test_a_turn_of_calls_starts_with_what_every_call_writes() -> None:
    city = {"type": "object", "properties": {"city": {"type": "string"}}}
    tools = [ToolSpec("get_weather", "", city),
             ToolSpec("noop", "", {"type": "object", "properties": {}})]  # fmt: skip
    required = call_grammar(tools, "required", GENERIC, parallel=True)
    assert required.prefix == '<tool_call>\n{"name": "'
    assert 'root ::= first "\\n</tool_call>" ("\\n" block){0,7}' in required.grammar
    assert "first ::= tool0-tail | tool1-tail" in required.grammar
    one = call_grammar(tools, "noop", GENERIC, parallel=True)
    assert one.prefix == '<tool_call>\n{"name": "noop", "arguments":'
    assert 'first ::= " " tool0-arguments "}"' in one.grammar  # the chosen tool's arguments
    assert "get_weather" not in one.grammar
    lazy = call_grammar(tools, "auto", GENERIC, parallel=False, opened=True)
    assert lazy.prefix == '\n{"name": "'
    assert lazy.grammar.splitlines()[-1] == 'root ::= first "\\n</tool_call>"'
    mistral = call_grammar(tools, "required", MISTRAL, parallel=False)
    assert mistral.prefix == '[TOOL_CALLS][{"name": "'
    assert mistral.grammar.splitlines()[-1] == 'root ::= first "]"'
