"""LangChain as a client of a node: ChatOpenAI (with tools), ChatOllama, OpenAIEmbeddings
with its defaults (it tokenizes with tiktoken and posts token ids).

``python langchain_client.py URL KEY MODEL``; prints one JSON object.
"""

import json
import sys

from langchain_core.tools import tool
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

url, key, model = sys.argv[1:4]
out: dict[str, object] = {}


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


chat = ChatOpenAI(model=model, base_url=f"{url}/v1", api_key=key)
out["chat_openai"] = chat.invoke("Hi").content
called = chat.bind_tools([get_weather]).invoke("Weather in Paris?")
out["chat_openai_calls"] = [[c["name"], c["args"]] for c in called.tool_calls]
ollama = ChatOllama(model=model, base_url=url,
                    client_kwargs={"headers": {"Authorization": f"Bearer {key}"}})  # fmt: skip
out["chat_ollama"] = ollama.invoke("Hi").content
ollama_called = ollama.bind_tools([get_weather]).invoke("Weather in Paris?")
out["chat_ollama_calls"] = [[c["name"], c["args"]] for c in ollama_called.tool_calls]
embeddings = OpenAIEmbeddings(model=model, base_url=f"{url}/v1", api_key=key)
out["embeddings"] = embeddings.embed_documents(["hello world", "def f(): pass"])
print(json.dumps(out))
