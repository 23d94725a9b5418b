"""The client API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand next to the routes, and kept equal to them by a test (every route here,
nothing more): it is what fuzzers (``schemathesis``) and client generators read. Request
schemas state what the parsers accept — extra fields are allowed, as real clients send
many — and every route lists the errors it can answer, in its dialect's shape.
"""

from __future__ import annotations

from typing import Any

from edgecoder import __version__
from edgecoder.adapters.web.request_limits import (
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    MAX_STOP_CHARS,
    MAX_STOPS,
    MAX_TOOLS,
)

__all__ = ("openapi_document",)

Schema = dict[str, Any]

_ANY_OBJECT: Schema = {"type": "object"}
_TEXT: Schema = {"type": "string"}
_STOP: Schema = {
    "oneOf": [
        {"type": "string", "maxLength": MAX_STOP_CHARS},
        {"type": "array", "maxItems": MAX_STOPS,
         "items": {"type": "string", "maxLength": MAX_STOP_CHARS}},
    ]
}  # fmt: skip
_TOOL: Schema = {
    "type": "object",
    "required": ["function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _TEXT, "description": _TEXT, "parameters": _ANY_OBJECT},
        },
    },
}
_TOOLS: Schema = {"type": "array", "maxItems": MAX_TOOLS, "items": _TOOL}
_PART: Schema = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"enum": ["text", "input_text", "output_text"]}, "text": _TEXT},
}
_OPENAI_MESSAGE: Schema = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"oneOf": [_TEXT, {"type": "array", "items": _PART}, {"type": "null"}]},
        "tool_call_id": _TEXT,
        "tool_calls": {"type": "array", "maxItems": MAX_TOOLS, "items": _ANY_OBJECT},
    },
}
_SAMPLING: Schema = {
    "max_tokens": {"type": "integer", "minimum": 1},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "stop": _STOP,
    "seed": {"type": "integer"},
    "n": {"const": 1},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "ignore_eos": {"type": "boolean"},
}
_TEXTS: Schema = {
    "oneOf": [_TEXT, {"type": "array", "minItems": 1, "maxItems": MAX_EMBEDDING_INPUTS,
                      "items": _TEXT}]
}  # fmt: skip
_OPTIONS: Schema = {
    "type": "object",
    "properties": {
        "num_predict": {"type": "integer"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "stop": _STOP,
        "seed": {"type": "integer"},
    },
}


def _body(required: list[str], properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


CHAT = _body(["model", "messages"], {
    "model": _TEXT,
    "messages": {"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES,
                 "items": _OPENAI_MESSAGE},
    "tools": _TOOLS,
    "tool_choice": {"oneOf": [{"enum": ["auto", "none", "required"]}, _ANY_OBJECT]},
    "parallel_tool_calls": {"type": "boolean"},
    "response_format": _body(["type"], {"type": {"enum": ["text", "json_object", "json_schema"]}}),
    **_SAMPLING,
})  # fmt: skip
COMPLETION = _body(["model"], {
    "model": _TEXT, "prompt": _TEXT, "suffix": _TEXT, "echo": {"type": "boolean"}, **_SAMPLING,
})  # fmt: skip
EMBEDDINGS = _body(["model", "input"], {
    "model": _TEXT, "input": _TEXTS, "encoding_format": {"enum": ["float", "base64"]},
})  # fmt: skip
_RESPONSES_ITEM: Schema = {"oneOf": [
    _OPENAI_MESSAGE,
    _body(["type", "call_id", "name", "arguments"], {
        "type": {"const": "function_call"}, "call_id": _TEXT, "name": _TEXT, "arguments": _TEXT}),
    _body(["type", "call_id", "output"], {
        "type": {"const": "function_call_output"}, "call_id": _TEXT, "output": _TEXT}),
]}  # fmt: skip
RESPONSES = _body(["model", "input"], {
    "model": _TEXT,
    "input": {"oneOf": [_TEXT, {"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES,
                                "items": _RESPONSES_ITEM}]},
    "instructions": _TEXT,
    "max_output_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "tools": {"type": "array", "maxItems": MAX_TOOLS, "items": _body(["type", "name"], {
        "type": {"const": "function"}, "name": _TEXT, "description": _TEXT,
        "parameters": _ANY_OBJECT, "strict": {"type": "boolean"}})},
    "tool_choice": {"oneOf": [{"enum": ["auto", "none", "required"]}, _body(["type", "name"], {
        "type": {"const": "function"}, "name": _TEXT})]},
    "parallel_tool_calls": {"type": "boolean"},
    "max_tool_calls": {"type": "integer", "minimum": 0},
    "text": {"type": "object", "properties": {"format": _body(["type"], {
        "type": {"enum": ["text", "json_object", "json_schema"]}, "schema": _ANY_OBJECT})}},
    "reasoning": _ANY_OBJECT,
    "metadata": _ANY_OBJECT,
    "store": {"type": "boolean"},
    "include": {"type": "array", "items": _TEXT},
    "truncation": {"enum": ["auto", "disabled"]},
    "background": {"const": False},
    "top_logprobs": {"const": 0},
    "stream": {"type": "boolean"},
})  # fmt: skip
INFILL = _body([], {
    "model": _TEXT, "input_prefix": _TEXT, "input_suffix": _TEXT, "prompt": _TEXT,
    "n_predict": {"type": "integer"}, "temperature": {"type": "number", "minimum": 0,
                                                      "maximum": 2},
    "stop": _STOP, "seed": {"type": "integer"}, "stream": {"type": "boolean"},
})  # fmt: skip
OLLAMA_CHAT = _body(["model"], {
    "model": _TEXT,
    "messages": {"type": "array", "maxItems": MAX_MESSAGES, "items": _body(["role"], {
        "role": {"enum": ["system", "user", "assistant", "tool"]},
        "content": _TEXT, "tool_name": _TEXT,
        "tool_calls": {"type": "array", "maxItems": MAX_TOOLS, "items": _ANY_OBJECT},
    })},
    "tools": _TOOLS, "options": _OPTIONS, "stream": {"type": "boolean"},
    "format": {"oneOf": [{"const": "json"}, _ANY_OBJECT]},
})  # fmt: skip
OLLAMA_GENERATE = _body(["model"], {
    "model": _TEXT, "prompt": _TEXT, "suffix": _TEXT, "system": _TEXT,
    "raw": {"type": "boolean"}, "options": _OPTIONS, "stream": {"type": "boolean"},
})  # fmt: skip
OLLAMA_EMBED = _body(["model"], {"model": _TEXT, "input": _TEXTS})
OLLAMA_EMBEDDINGS = _body(["model", "prompt"], {"model": _TEXT, "prompt": _TEXT})
MODEL_NAME = _body(["model"], {"model": _TEXT})
_ANTHROPIC_BLOCKS: Schema = {"type": "array", "items": _body(["type"], {"type": _TEXT})}
_ANTHROPIC_CHAT: Schema = {
    "model": _TEXT,
    "system": {"oneOf": [_TEXT, _ANTHROPIC_BLOCKS]},
    "messages": {"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES,
                 "items": _body(["role", "content"], {
                     "role": {"enum": ["user", "assistant"]},
                     "content": {"oneOf": [_TEXT, _ANTHROPIC_BLOCKS]}})},
    "tools": {"type": "array", "maxItems": MAX_TOOLS, "items": _body(["name", "input_schema"], {
        "name": _TEXT, "description": _TEXT, "input_schema": _ANY_OBJECT,
        "type": {"const": "custom"}})},
    "tool_choice": _body(["type"], {"type": {"enum": ["auto", "any", "tool", "none"]},
                                    "name": _TEXT,
                                    "disable_parallel_tool_use": {"type": "boolean"}}),
    "thinking": _ANY_OBJECT,
}  # fmt: skip
ANTHROPIC_MESSAGES = _body(["model", "max_tokens", "messages"], {
    **_ANTHROPIC_CHAT,
    "max_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "top_k": {"type": "integer", "minimum": 0},
    "stop_sequences": {"type": "array", "maxItems": MAX_STOPS,
                       "items": {"type": "string", "maxLength": MAX_STOP_CHARS}},
    "metadata": _ANY_OBJECT,
    "stream": {"type": "boolean"},
})  # fmt: skip
ANTHROPIC_COUNT = _body(["model", "messages"], _ANTHROPIC_CHAT)

_OPENAI_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": _body(["message", "type", "code"], {
            "message": _TEXT, "type": _TEXT, "code": {"type": ["string", "null"]},
            "param": {"type": ["string", "null"]},
        }),
    },
}  # fmt: skip
_OLLAMA_ERROR: Schema = _body(["error"], {"error": _TEXT})
_ANTHROPIC_ERROR: Schema = _body(["type", "error"], {
    "type": {"const": "error"},
    "error": _body(["type", "message"], {"type": _TEXT, "message": _TEXT}),
})  # fmt: skip
_MESSAGES = {
    400: "malformed, mistyped or out-of-range input; the message names the field",
    401: "no API key, or an unknown or revoked one",
    402: "a peer would run it, and this node's credits or the API key's budget cannot cover "
    "its largest price (insufficient_credits; never 429, which IDEs retry for ever)",
    403: "the key is not an admin key",
    404: "no such model, job or key",
    405: "method not allowed on this path",
    409: "the name is taken",
    413: "the body is over api.max_body_bytes",
    429: "over the key's rate, or too many failed authentications from this address",
    500: "an internal error; the message carries the request id",
    503: "no backend, overloaded, or storage unavailable (see Retry-After)",
    529: "every slot busy and the queue full (Anthropic's overloaded_error)",
    507: "the data dir is full",
}
_STREAMS = {"sse": "text/event-stream", "ndjson": "application/x-ndjson"}


def _operation(
    summary: str,
    *,
    ollama: bool = False,
    anthropic: bool = False,
    body: Schema | None = None,
    status: int = 200,
    stream: str | None = None,
    params: list[Schema] | None = None,
    secured: bool = True,
    plain: bool = False,
    paid: bool | None = None,
) -> Schema:
    """``paid``: a peer may run it, for credits (default: whether it streams — every
    generation does, and nothing else)."""
    paid = stream is not None if paid is None else paid
    shape = _OLLAMA_ERROR if ollama else _ANTHROPIC_ERROR if anthropic else _OPENAI_ERROR
    error = {"application/json": {"schema": shape}}
    content: Schema = {"application/json": {"schema": _ANY_OBJECT}}
    if plain:
        content = {"text/plain": {"schema": _TEXT}}
    if stream is not None:
        content[_STREAMS[stream]] = {"schema": _TEXT}
    codes = [400, 401, 404, 405, 413, 429, 500, 503, 507] if secured else [500]
    if anthropic:
        codes.append(529)
    if paid:
        codes.append(402)
    responses: Schema = {str(status): {"description": "success", "content": content}}
    responses |= {str(c): {"description": _MESSAGES[c], "content": error} for c in codes}
    operation: Schema = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if params:
        operation["parameters"] = params
    if not secured:
        operation["security"] = []
    return operation


def _path_param(name: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema or _TEXT}


def _admin(
    summary: str, body: Schema | None = None, *, conflict: str = "", **kwargs: Any
) -> Schema:
    """An admin operation; ``conflict`` describes its 409 when it has one."""
    operation = _operation(summary, body=body, paid=False, **kwargs)
    error = {"application/json": {"schema": _OPENAI_ERROR}}
    operation["responses"]["403"] = {"description": _MESSAGES[403], "content": error}
    if conflict:
        operation["responses"]["409"] = {"description": conflict, "content": error}
    return operation


def _setup(
    summary: str, codes: dict[int, str], body: Schema | None = None, status: int = 200
) -> Schema:
    operation = _operation(summary, body=body, status=status, secured=False)
    error = {"application/json": {"schema": _OPENAI_ERROR}}
    operation["responses"] |= {
        str(c): {"description": d, "content": error} for c, d in codes.items()
    }
    return operation


_SETUP_CLOSED = "no setup is open: the node has an owner, or never made a setup code"
SETUP: Schema = _body(
    ["code"],
    {
        "code": {"type": "string", "description": "the setup code on the box's console"},
        "name": {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"},
    },
)


def _paths() -> Schema:
    limit = {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}  # fmt: skip
    before = {"name": "before", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 2**53},
              "description": "only entries below this sequence number (paging)"}  # fmt: skip
    job = _path_param("job", {"type": "integer", "minimum": 0})
    kinds = {"name": "kinds", "in": "query", "required": False, "schema": _TEXT,
             "description": "comma-separated event kinds (default: all)"}  # fmt: skip
    return {
        "/": {"get": _operation("'Ollama is running', as Ollama answers (no key needed)",
                                ollama=True, secured=False, plain=True)},
        "/healthz": {"get": _operation("node health (no key needed)", secured=False)},
        "/openapi.json": {"get": _operation("this document (no key needed)", secured=False)},
        "/v1/models": {"get": _operation("models this node and its peers serve")},
        "/v1/models/{model}": {"get": _operation("one model", params=[_path_param("model")])},
        "/v1/chat/completions": {"post": _operation("chat completion", body=CHAT,
                                                    stream="sse")},
        "/v1/completions": {"post": _operation("completion or FIM", body=COMPLETION,
                                               stream="sse")},
        "/fim/completions": {"post": _operation("Continue's FIM, apiBase without a slash",
                                                body=COMPLETION, stream="sse")},
        "/v1/fim/completions": {"post": _operation("Continue's FIM", body=COMPLETION,
                                                   stream="sse")},
        "/v1/embeddings": {"post": _operation("embeddings", body=EMBEDDINGS)},
        "/v1/responses": {"post": _operation("Responses API", body=RESPONSES,
                                             stream="sse")},
        "/v1/messages": {"post": _operation("Anthropic Messages", anthropic=True,
                                            body=ANTHROPIC_MESSAGES, stream="sse")},
        "/v1/messages/count_tokens": {"post": _operation("Anthropic token count", anthropic=True,
                                                         body=ANTHROPIC_COUNT)},
        "/infill": {"post": _operation("llama.cpp server's FIM", body=INFILL, stream="ndjson")},
        "/api/version": {"get": _operation("Ollama version", ollama=True)},
        "/api/tags": {"get": _operation("Ollama model list", ollama=True)},
        "/api/show": {"post": _operation("Ollama model details", ollama=True, body=MODEL_NAME)},
        "/api/ps": {"get": _operation("models in memory", ollama=True)},
        "/api/chat": {"post": _operation("Ollama chat", ollama=True, body=OLLAMA_CHAT,
                                         stream="ndjson")},
        "/api/generate": {"post": _operation("Ollama generate", ollama=True,
                                             body=OLLAMA_GENERATE, stream="ndjson")},
        "/api/embed": {"post": _operation("Ollama embeddings", ollama=True, body=OLLAMA_EMBED)},
        "/api/embeddings": {"post": _operation("Ollama legacy embeddings", ollama=True,
                                               body=OLLAMA_EMBEDDINGS)},
        "/setup": {
            "get": _setup("whether this node waits for its owner (no key needed)",
                          {404: _SETUP_CLOSED}),
            "post": _setup("claim the node: its setup code for the first admin key",
                           {400: _MESSAGES[400], 403: "wrong setup code", 404: _SETUP_CLOSED,
                            413: _MESSAGES[413],
                            429: "too many wrong setup codes (see Retry-After)",
                            503: "storage unavailable", 507: _MESSAGES[507]},
                           SETUP, status=201),
        },
        "/admin/peers": {"get": _admin("the mesh peers")},
        "/admin/tasks": {"get": _admin("recent mesh tasks", params=[limit])},
        "/admin/ledger": {"get": _admin("this node's credits and newest chain entries",
                                        params=[limit, before])},
        "/admin/ledger/peers": {"get": _admin("every ledger head gossiped by a peer")},
        "/admin/ledger/verify": {"get": _admin("every chain held, verified from its start")},
        "/admin/ledger/vouch": {"post": _admin(
            "vouch for a node's starting allowance",
            _body(["node"], {"node": {"type": "string", "pattern": "^[a-z2-7]{32}$"}}),
            status=201, conflict="this node may not vouch for it: no_economy, own_vouch, "
            "has_allowance, no_standing or vouch_quota (the code)")},
        "/admin/status": {"get": _admin("node status")},
        "/admin/models": {"get": _admin("models and the default")},
        "/admin/models/pull": {"post": _admin("start pulling a model", MODEL_NAME, status=202)},
        "/admin/models/jobs/{job}": {"get": _admin("a pull job", params=[job])},
        "/admin/models/default": {"put": _admin("set the default model", MODEL_NAME)},
        "/admin/models/{name}": {"delete": _admin("remove a model",
                                                  params=[_path_param("name")])},
        "/admin/mode": {"put": _admin("mesh or local-only",
                                      _body(["mode"], {"mode": {"enum": ["mesh",
                                                                         "local-only"]}}))},
        "/admin/owner-busy": {"put": _admin("the owner is using the machine",
                                            _body(["busy"], {"busy": {"type": "boolean"}}))},
        "/admin/keys": {
            "get": _admin("API keys"),
            "post": _admin("create an API key", _body(["name"], {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"},
                "admin": {"type": "boolean"}}), status=201),
        },
        "/admin/keys/{name}": {"delete": _admin("revoke an API key",
                                                params=[_path_param("name")])},
        "/admin/keys/{name}/budget": {"put": _admin(
            "give an API key's credit account a budget (null: no limit)",
            _body(["budget_mc"], {"budget_mc": {"type": ["integer", "null"], "minimum": 0}}),
            params=[_path_param("name")])},
        "/admin/reload": {"post": _admin("re-read the configuration")},
        "/admin/events": {"get": _admin("the node's events as they happen", params=[kinds],
                                        stream="sse")},
    }  # fmt: skip


def openapi_document() -> Schema:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EdgeCoder client API",
            "version": __version__,
            "description": "OpenAI-, Anthropic- and Ollama-compatible inference, and the "
            "node's admin routes. See docs/api.md and docs/limits.md.",
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": _paths(),
    }
