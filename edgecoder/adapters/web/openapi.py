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
    **_SAMPLING,
})  # fmt: skip
COMPLETION = _body(["model"], {
    "model": _TEXT, "prompt": _TEXT, "suffix": _TEXT, "echo": {"type": "boolean"}, **_SAMPLING,
})  # fmt: skip
EMBEDDINGS = _body(["model", "input"], {
    "model": _TEXT, "input": _TEXTS, "encoding_format": {"enum": ["float", "base64"]},
})  # fmt: skip
RESPONSES = _body(["model", "input"], {
    "model": _TEXT,
    "input": {"oneOf": [_TEXT, {"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES,
                                "items": _OPENAI_MESSAGE}]},
    "instructions": _TEXT,
    "max_output_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
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
})  # fmt: skip
OLLAMA_GENERATE = _body(["model"], {
    "model": _TEXT, "prompt": _TEXT, "suffix": _TEXT, "system": _TEXT,
    "raw": {"type": "boolean"}, "options": _OPTIONS, "stream": {"type": "boolean"},
})  # fmt: skip
OLLAMA_EMBED = _body(["model"], {"model": _TEXT, "input": _TEXTS})
OLLAMA_EMBEDDINGS = _body(["model", "prompt"], {"model": _TEXT, "prompt": _TEXT})
MODEL_NAME = _body(["model"], {"model": _TEXT})

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
_MESSAGES = {
    400: "malformed, mistyped or out-of-range input; the message names the field",
    401: "no API key, or an unknown or revoked one",
    403: "the key is not an admin key",
    404: "no such model, job or key",
    405: "method not allowed on this path",
    409: "the name is taken",
    413: "the body is over api.max_body_bytes",
    429: "over the key's rate, or too many failed authentications from this address",
    500: "an internal error; the message carries the request id",
    503: "no backend, overloaded, or storage unavailable (see Retry-After)",
    507: "the data dir is full",
}
_STREAMS = {"sse": "text/event-stream", "ndjson": "application/x-ndjson"}


def _operation(
    summary: str,
    *,
    ollama: bool = False,
    body: Schema | None = None,
    status: int = 200,
    stream: str | None = None,
    params: list[Schema] | None = None,
    secured: bool = True,
) -> Schema:
    error = {"application/json": {"schema": _OLLAMA_ERROR if ollama else _OPENAI_ERROR}}
    content: Schema = {"application/json": {"schema": _ANY_OBJECT}}
    if stream is not None:
        content[_STREAMS[stream]] = {"schema": _TEXT}
    codes = [400, 401, 404, 405, 413, 429, 500, 503, 507] if secured else [500]
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


def _admin(summary: str, body: Schema | None = None, **kwargs: Any) -> Schema:
    operation = _operation(summary, body=body, **kwargs)
    operation["responses"]["403"] = {
        "description": _MESSAGES[403],
        "content": {"application/json": {"schema": _OPENAI_ERROR}},
    }
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
    job = _path_param("job", {"type": "integer", "minimum": 0})
    kinds = {"name": "kinds", "in": "query", "required": False, "schema": _TEXT,
             "description": "comma-separated event kinds (default: all)"}  # fmt: skip
    return {
        "/healthz": {"get": _operation("node health (no key needed)", secured=False)},
        "/openapi.json": {"get": _operation("this document (no key needed)", secured=False)},
        "/v1/models": {"get": _operation("models this node and its peers serve")},
        "/v1/models/{model}": {"get": _operation("one model", params=[_path_param("model")])},
        "/v1/chat/completions": {"post": _operation("chat completion", body=CHAT,
                                                    stream="sse")},
        "/v1/completions": {"post": _operation("completion or FIM", body=COMPLETION,
                                               stream="sse")},
        "/v1/fim/completions": {"post": _operation("Continue's FIM", body=COMPLETION,
                                                   stream="sse")},
        "/v1/embeddings": {"post": _operation("embeddings", body=EMBEDDINGS)},
        "/v1/responses": {"post": _operation("Responses API, text only", body=RESPONSES,
                                             stream="sse")},
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
            "description": "OpenAI- and Ollama-compatible inference, and the node's admin "
            "routes. See docs/api.md and docs/limits.md.",
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": _paths(),
    }
