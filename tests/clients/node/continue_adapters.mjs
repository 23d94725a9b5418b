// Continue's own client library against a node: every call Continue's openai provider
// makes. Prints one JSON object of results; the pytest side checks it.
// Usage: node continue_adapters.mjs <apiBase> <apiKey> <model>
import { constructLlmApi } from "@continuedev/openai-adapters";

const [apiBase, apiKey, model] = process.argv.slice(2);
const api = constructLlmApi({ provider: "openai", apiBase, apiKey });
const signal = new AbortController().signal;
const out = {};
const ask = [{ role: "user", content: "Say hello." }];

let text = "";
for await (const chunk of api.chatCompletionStream({ model, messages: ask, stream: true }, signal)) {
  text += chunk.choices[0]?.delta?.content ?? "";
}
out.chatStream = text;

const whole = await api.chatCompletionNonStream({ model, messages: ask, stream: false }, signal);
out.chat = whole.choices[0].message.content;

const completion = await api.completionNonStream({ model, prompt: "def add(a, b):" }, signal);
out.completion = completion.choices[0].text;

let fim = "";
for await (const chunk of api.fimStream(
  { model, prompt: "def add(a, b):\n    ", suffix: "\n\nprint(add(1, 2))\n", max_tokens: 16 },
  signal,
)) {
  fim += chunk.choices[0]?.delta?.content ?? "";
}
out.fim = fim;

const embedded = await api.embed({ model, input: ["abc", "hello"] });
out.embeddings = embedded.data.map((d) => d.embedding);

const tools = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const calls = {};
for await (const chunk of api.chatCompletionStream(
  { model, messages: [{ role: "user", content: "Weather in Paris?" }], tools, stream: true },
  signal,
)) {
  for (const fragment of chunk.choices[0]?.delta?.tool_calls ?? []) {
    const call = (calls[fragment.index] ??= { id: "", name: "", arguments: "" });
    call.id += fragment.id ?? "";
    call.name += fragment.function?.name ?? "";
    call.arguments += fragment.function?.arguments ?? "";
  }
}
out.toolCalls = Object.values(calls);
console.log(JSON.stringify(out));
