// The Vercel AI SDK (ai + @ai-sdk/openai-compatible) against a node: generateText with a
// tool the SDK runs itself, over as many steps as the tool loop needs.
// Usage: node ai_sdk.mjs <baseURL> <apiKey> <model>
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, stepCountIs, tool } from "ai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const node = createOpenAICompatible({ name: "edgecoder", baseURL, apiKey });
const ran = [];
const result = await generateText({
  model: node(model),
  prompt: "What is the weather in Paris?",
  tools: {
    get_weather: tool({
      description: "The weather in a city",
      inputSchema: jsonSchema({
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      }),
      execute: async ({ city }) => {
        ran.push(city);
        return `sunny in ${city}`;
      },
    }),
  },
  stopWhen: stepCountIs(3),
});
console.log(JSON.stringify({ text: result.text, ran, steps: result.steps.length,
                             finish: result.finishReason }));
