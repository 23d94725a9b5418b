"""LiteLLM as a client of a node: its openai/, ollama/ and ollama_chat/ providers.

Run in the clients' own environment (``.venv-clients``) by ``tests/clients``:
``python litellm_client.py URL KEY MODEL``; prints one JSON object.
"""

import json
import sys

import litellm

url, key, model = sys.argv[1:4]
headers = {"Authorization": f"Bearer {key}"}
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]  # fmt: skip
ask = [{"role": "user", "content": "Weather in Paris?"}]
out: dict[str, object] = {}

reply = litellm.completion(model=f"openai/{model}", api_base=f"{url}/v1", api_key=key,
                           messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
out["openai"] = reply.choices[0].message.content
called = litellm.completion(model=f"openai/{model}", api_base=f"{url}/v1", api_key=key,
                            messages=ask, tools=tools)  # fmt: skip
call = called.choices[0].message.tool_calls[0]
out["openai_call"] = [call.function.name, json.loads(call.function.arguments)]
hi = [{"role": "user", "content": "Hi"}]
streamed = litellm.completion(model=f"openai/{model}", api_base=f"{url}/v1", api_key=key,
                              messages=hi, stream=True)  # fmt: skip
out["openai_stream"] = "".join(c.choices[0].delta.content or "" for c in streamed)
# The ollama/ provider sends "images": [] with each message.
legacy = litellm.completion(model=f"ollama/{model}", api_base=url, headers=headers,
                            messages=[{"role": "user", "content": "Hi"}])  # fmt: skip
out["ollama"] = legacy.choices[0].message.content
chat = litellm.completion(model=f"ollama_chat/{model}", api_base=url, headers=headers,
                          messages=ask, tools=tools)  # fmt: skip
ollama_call = chat.choices[0].message.tool_calls[0]
out["ollama_chat_call"] = [ollama_call.function.name, json.loads(ollama_call.function.arguments)]
print(json.dumps(out))
