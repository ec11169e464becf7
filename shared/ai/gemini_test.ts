import assert from "node:assert/strict";
import { GeminiError, type GeminiStreamEvent, simulatedGemini } from "./gemini.ts";
import { validateJson } from "./json-schema.ts";

const schema = {
  type: "object",
  required: ["reply", "tone"],
  properties: { reply: { type: "string" }, tone: { enum: ["friendly", "formal"] } },
};
const request = {
  model: "gemini-2.5-flash",
  instructions: "Draft a reply.",
  input: { message: "Can we move the meeting to Friday?" },
  responseJsonSchema: schema,
};

Deno.test("the sandbox face answers deterministically, valid for the schema, marked simulated", async () => {
  // The simulation reaches nothing: no fetch is possible while it answers.
  const realFetch = globalThis.fetch;
  globalThis.fetch = () => Promise.reject(new Error("the simulation must not fetch"));
  try {
    const first = await simulatedGemini.generateJson(request);
    assert.deepEqual(validateJson(schema, first.output), []);
    assert.equal(first.simulated, true);
    assert.equal(first.attempts, 0);
    assert.ok(first.usage.promptTokens > 0 && first.usage.candidatesTokens > 0);
    assert.equal(first.usage.totalTokens, first.usage.promptTokens + first.usage.candidatesTokens);
    assert.deepEqual(await simulatedGemini.generateJson(request), first);
    // Inline files count like Gemini's (258 tokens each).
    const withFile = await simulatedGemini.generateJson({
      ...request,
      files: [{ mimeType: "image/png", data: new Uint8Array([137, 80, 78, 71]) }],
    });
    assert.equal(withFile.usage.promptTokens, first.usage.promptTokens + 258);
  } finally {
    globalThis.fetch = realFetch;
  }
});

Deno.test("the sandbox stream gives pieces of the answer, then the same result", async () => {
  const events: GeminiStreamEvent[] = [];
  for await (const event of simulatedGemini.streamJson(request)) events.push(event);
  const last = events.pop()!;
  assert.equal(last.type, "result");
  assert.ok(events.length >= 2 && events.every((event) => event.type === "partial"));
  const text = events.map((event) => event.type === "partial" ? event.text : "").join("");
  if (last.type === "result") assert.deepEqual(JSON.parse(text), last.result.output);
});

Deno.test("the sandbox face honours an aborted signal", async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(
    simulatedGemini.generateJson({ ...request, signal: controller.signal }),
    (error) => error instanceof GeminiError && error.kind === "cancelled",
  );
});
