// The ollama npm client against a node: chat with tools (arguments must be objects),
// the tool result fed back, and an error read as a message (not "[object Object]").
// Usage: node ollama_npm.mjs <host> <apiKey> <model>
import { Ollama } from "ollama";

const [host, apiKey, model] = process.argv.slice(2);
const ollama = new Ollama({ host, headers: { Authorization: `Bearer ${apiKey}` } });
const tools = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const messages = [{ role: "user", content: "Weather in Paris?" }];
const first = await ollama.chat({ model, messages, tools, stream: false });
const call = first.message.tool_calls[0];
messages.push(first.message, { role: "tool", content: "sunny", tool_name: call.function.name });
let answer = "";
for await (const part of await ollama.chat({ model, messages, tools, stream: true })) {
  answer += part.message.content;
}
let error = "";
try {
  await ollama.chat({ model: "no-such-model", messages, stream: false });
} catch (e) {
  error = e.message;
}
console.log(JSON.stringify({ arguments: call.function.arguments, answer, error }));
