"""JSON Schema → llama.cpp grammar (GBNF): constrained output that is JSON of the schema.

Pure text generation, no llama.cpp import. What the grammar enforces:

* ``type`` (one or a list), ``enum``, ``const``, ``anyOf``/``oneOf`` (as a union),
  ``allOf`` of object schemas (merged), ``$ref`` into ``$defs``/``definitions`` (recursive
  ones too), ``{}``/``true`` as any JSON value;
* objects: ``properties`` in the schema's order, every ``required`` one present, the
  others optional; no property outside ``properties`` when it is given (a narrowing the
  schema allows), any properties when it is not (or ``additionalProperties``' schema);
* strings: proper JSON strings (escapes, no raw control characters), ``minLength`` and
  ``maxLength`` up to :data:`MAX_REPEAT`;
* integers: exact ``minimum``/``maximum``/``exclusive*`` bounds, at most 16 digits;
  numbers: no minus sign when ``minimum >= 0``;
* arrays: ``items``, ``minItems`` and ``maxItems`` up to :data:`MAX_REPEAT`.

Not enforced (the output is still JSON of the right shape): ``pattern``, ``format``,
``multipleOf``, number bounds other than the sign, ``uniqueItems``, ``not``, conditionals,
``prefixItems``, remote ``$ref``. ``docs/inference.md`` lists the same.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ("MAX_REPEAT", "GrammarBuilder", "literal")

MAX_REPEAT = 256
"""Largest length or count bound written into a grammar (llama.cpp expands repetitions)."""
_MAX_DIGITS = 16

_PRIMITIVES = {
    "ws": "([ \\t\\n] [ \\t]{0,16})?",
    "char": '[^"\\\\\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\""',
    "integer": f'"-"? ("0" | [1-9] [0-9]{{0,{_MAX_DIGITS - 1}}})',
    "fraction": '("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?',
    "number": "integer fraction",
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (string ws ":" ws value ws ("," ws string ws ":" ws value ws)*)? "}"',
    "array": '"[" ws (value ws ("," ws value ws)*)? "]"',
}
_DEPENDS = {
    "string": ("char",), "number": ("integer", "fraction"),
    "value": ("object", "array", "string", "number", "boolean", "null"),
    "object": ("ws", "string", "value"), "array": ("ws", "value"),
}  # fmt: skip


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\r":
            escaped.append("\\r")
        elif char == "\t":
            escaped.append("\\t")
        elif ord(char) < 0x20:
            escaped.append(f"\\x{ord(char):02X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _json_literal(value: Any) -> str:
    return literal(json.dumps(value, ensure_ascii=False))


def _repeat(item: str, low: int, high: int | None) -> str:
    """``item`` repeated ``low`` to ``high`` times (None: unbounded), within MAX_REPEAT."""
    low = min(max(low, 0), MAX_REPEAT)
    if high is not None and high <= MAX_REPEAT:
        return f"({item}){{{low},{max(high, low)}}}"
    return f"({item}){{{low},}}" if low else f"({item})*"


def _digits(low: str, high: str) -> str:
    """Every digit string of one length from ``low`` to ``high`` (both that length)."""
    if not low:
        return ""
    n = len(low) - 1
    if low[0] == high[0]:
        rest = _digits(low[1:], high[1:])
        return f'"{low[0]}" ({rest})' if rest else f'"{low[0]}"'
    parts = []
    first, last = int(low[0]), int(high[0])
    if low[1:] != "0" * n:
        parts.append(f'"{low[0]}" ({_digits(low[1:], "9" * n)})')
        first += 1
    tail = ""
    if high[1:] != "9" * n:
        tail = f'"{high[0]}" ({_digits("0" * n, high[1:])})'
        last -= 1
    if first <= last:
        parts.append(f"[{first}-{last}]" + (f" [0-9]{{{n}}}" if n else ""))
    if tail:
        parts.append(tail)
    return " | ".join(f"({p})" for p in parts)


def _natural_range(low: int, high: int) -> str:
    """Decimal numerals (no sign, no leading zero) from ``low`` to ``high`` (0 <= low <= high)."""
    parts = []
    for width in range(len(str(low)), len(str(high)) + 1):
        start = max(low, 10 ** (width - 1) if width > 1 else 0)
        end = min(high, 10**width - 1)
        if start <= end:
            parts.append(f"({_digits(str(start), str(end))})")
    return " | ".join(parts)


def _integer_range(low: int | None, high: int | None) -> str:
    limit = 10**_MAX_DIGITS - 1
    low = -limit if low is None else max(low, -limit)
    high = limit if high is None else min(high, limit)
    if low > high:
        raise ValueError(f"no integer lies between {low} and {high}")
    parts = []
    if low < 0:
        parts.append(f'"-" ({_natural_range(max(1, -high), -low)})')
    if high >= 0:
        parts.append(f"({_natural_range(max(low, 0), high)})")
    return " | ".join(parts)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The least and greatest integers the schema's bounds admit (None: unbounded)."""
    low: int | None = None
    high: int | None = None
    minimum, maximum = _number(schema.get("minimum")), _number(schema.get("maximum"))
    # Draft 4 writes an exclusive bound as a flag beside it.
    if minimum is not None:
        exclusive = schema.get("exclusiveMinimum") is True
        low = math.floor(minimum) + 1 if exclusive else math.ceil(minimum)
    if maximum is not None:
        exclusive = schema.get("exclusiveMaximum") is True
        high = math.ceil(maximum) - 1 if exclusive else math.floor(maximum)
    above, below = _number(schema.get("exclusiveMinimum")), _number(schema.get("exclusiveMaximum"))
    if above is not None:
        low = max(low, math.floor(above) + 1) if low is not None else math.floor(above) + 1
    if below is not None:
        high = min(high, math.ceil(below) - 1) if high is not None else math.ceil(below) - 1
    return low, high


class GrammarBuilder:
    """Collects the rules of one grammar; :meth:`schema` adds a schema's, :meth:`text` ends."""

    def __init__(self) -> None:
        self._rules: dict[str, str] = {}
        self._defs: dict[str, Any] = {}

    def rule(self, name: str, body: str) -> str:
        """Add ``name ::= body`` under a fresh name derived from ``name``; return the name."""
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-").lower() or "r"
        chosen, n = base, 1
        while chosen in self._rules or chosen in _PRIMITIVES:
            n += 1
            chosen = f"{base}-{n}"
        self._rules[chosen] = body
        return chosen

    def primitive(self, name: str) -> str:
        """One of the shared rules (``ws``, ``string``, ``value``…), added once."""
        if name not in self._rules:
            self._rules[name] = _PRIMITIVES[name]
            for needed in _DEPENDS.get(name, ()):
                self.primitive(needed)
        return name

    def text(self) -> str:
        """The grammar so far."""
        return "".join(f"{name} ::= {body}\n" for name, body in self._rules.items())

    def schema(self, schema: Any, name: str) -> str:
        """A rule for JSON values valid against ``schema``; returns its name."""
        if isinstance(schema, dict):
            for key in ("$defs", "definitions"):
                if isinstance(schema.get(key), dict):
                    self._defs.update({f"#/{key}/{k}": v for k, v in schema[key].items()})
        return self.rule(name, self._visit(schema, name))

    def _visit(self, schema: Any, name: str) -> str:
        if not isinstance(schema, dict) or not schema:
            return self.primitive("value")
        if "$ref" in schema:
            return self._ref(str(schema["$ref"]))
        if "const" in schema:
            return _json_literal(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return " | ".join(_json_literal(v) for v in schema["enum"])
        for union in ("anyOf", "oneOf"):
            if isinstance(schema.get(union), list) and schema[union]:
                variants = [{**_without(schema, union), **o} if isinstance(o, dict) else o
                            for o in schema[union]]  # fmt: skip
                return " | ".join(self.schema(v, f"{name}-{i}") for i, v in enumerate(variants))
        if isinstance(schema.get("allOf"), list):
            return self._visit(_merge(schema), name)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if isinstance(k, str)]
            options = [self.schema({**schema, "type": k}, f"{name}-{k}") for k in kinds]
            return " | ".join(options) or self.primitive("value")
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, name)
        if kind == "array":
            return self._array(schema, name)
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            low, high = _integer_bounds(schema)
            if low is None and high is None:
                return self.primitive("integer")
            return _integer_range(low, high)
        if kind == "number":
            minimum = _number(schema.get("minimum", schema.get("exclusiveMinimum")))
            if minimum is not None and minimum >= 0:
                return f'("0" | [1-9] [0-9]{{0,{_MAX_DIGITS - 1}}}) {self.primitive("fraction")}'
            return self.primitive("number")
        if kind in {"boolean", "null"}:
            return self.primitive(str(kind))
        return self.primitive("value")

    def _ref(self, ref: str) -> str:
        target = self._defs.get(ref)
        if target is None:
            return self.primitive("value")
        name = "def-" + re.sub(r"[^a-zA-Z0-9-]+", "-", ref.rsplit("/", 1)[-1]).lower()
        if name not in self._rules:
            self._rules[name] = "null"  # placeholder: a recursive reference finds the name
            self._rules[name] = self._visit(target, name)
        return name

    def _string(self, schema: dict[str, Any]) -> str:
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        if not isinstance(low, int) or isinstance(low, bool):
            low = 0
        if not isinstance(high, int) or isinstance(high, bool):
            high = None
        if low == 0 and high is None:
            return self.primitive("string")
        return f'"\\"" {_repeat(self.primitive("char"), low, high)} "\\""'

    def _array(self, schema: dict[str, Any], name: str) -> str:
        ws = self.primitive("ws")
        items = schema.get("items")
        item = self.schema(items, f"{name}-item") if isinstance(items, dict) else "value"
        if item == "value":
            self.primitive("value")
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        low = low if isinstance(low, int) and not isinstance(low, bool) else 0
        high = high if isinstance(high, int) and not isinstance(high, bool) else None
        if high == 0:
            return f'"[" {ws} "]"'
        rest = _repeat(f'"," {ws} {item} {ws}', max(low - 1, 0), None if high is None else high - 1)
        body = f"{item} {ws} {rest}"
        return f'"[" {ws} {body} "]"' if low > 0 else f'"[" {ws} ({body})? "]"'

    def _object(self, schema: dict[str, Any], name: str) -> str:
        ws = self.primitive("ws")
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                value = self.schema(extra, f"{name}-value")
                self.primitive("string")
                pair = f'string {ws} ":" {ws} {value} {ws}'
                return f'"{{" {ws} ({pair} ("," {ws} {pair})*)? "}}"'
            return self.primitive("object")
        required = {r for r in schema.get("required", []) if isinstance(r, str)}
        keys = list(properties)
        pairs = [
            f'{literal(json.dumps(key, ensure_ascii=False))} {ws} ":" {ws} '
            f"{self.schema(properties[key], f'{name}-{key}')} {ws}"
            for key in keys
        ]
        # tail(i): properties i.. after one was written (each preceded by a comma);
        # head(i): properties i.. before any was written. One rule each keeps it linear.
        tails: list[str] = [""] * (len(keys) + 1)
        heads: list[str] = [""] * (len(keys) + 1)
        for i in range(len(keys) - 1, -1, -1):
            after = tails[i + 1]
            written = f'"," {ws} {pairs[i]}'
            tail = written if keys[i] in required else f"({written})?"
            tails[i] = self.rule(f"{name}-tail{i}", f"{tail} {after}".strip())
            first = f"{pairs[i]} {after}".strip()
            if keys[i] in required:
                head = first
            else:
                head = f"{first} | {heads[i + 1]}" if heads[i + 1] else f"({first})?"
            heads[i] = self.rule(f"{name}-head{i}", head)
        return f'"{{" {ws} {heads[0]} "}}"' if keys else f'"{{" {ws} "}}"'


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _merge(schema: dict[str, Any]) -> dict[str, Any]:
    """``allOf`` folded into one schema: properties and required lists joined."""
    merged = _without(schema, "allOf")
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged
