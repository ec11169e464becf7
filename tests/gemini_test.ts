/**
 * The Gemini client (shared/ai/gemini.ts): the real @google/genai SDK against the stack's
 * Gemini stand-in (local/stand-ins/gemini.ts) over HTTP, through the address guard. Each test
 * uses a model name of its own, so its scripted answers and the requests the stand-in
 * recorded are its own.
 */
import assert from "node:assert/strict";
import {
  createGeminiClient,
  gemini,
  type GeminiClientOptions,
  GeminiError,
  type GeminiStreamEvent,
  type GenerateJsonRequest,
} from "../shared/ai/gemini.ts";
import { validateJson } from "../shared/ai/json-schema.ts";
import { estimateTokens, TOKENS_PER_INLINE_FILE } from "../shared/ai/simulation.ts";
import type { ScriptedAnswer } from "../local/stand-ins/gemini.ts";
import { guardedFetch } from "../shared/platform/outbound/fetch.ts";
import { clientFor } from "../shared/platform/providers.ts";
import { stack, test } from "./helpers/stack.ts";

const standIn = stack.gemini;
assert.ok(standIn.stand_in && standIn.api_key, "the test stack runs the Gemini stand-in");
const apiKey = standIn.api_key!;

const CLASSIFIER_SCHEMA = {
  type: "object",
  required: ["intent", "confidence"],
  properties: {
    intent: { type: "string", enum: ["billing", "support", "sales"] },
    confidence: { type: "number", minimum: 0, maximum: 1 },
    summary: { type: "string", maxLength: 80 },
  },
  additionalProperties: false,
};

/** A model name no other test uses: the stand-in's scripts and records are per model. */
const uniqueModel = () => `gemini-test-${crypto.randomUUID().slice(0, 12)}`;

function client(options: Partial<GeminiClientOptions> = {}) {
  return createGeminiClient({
    apiKey,
    baseUrl: standIn.base_url,
    timeoutMs: 5_000,
    retry: { attempts: 3, initialDelayMs: 100, maxDelayMs: 400 },
    // The stand-in is on this machine: the guard lets loopback through for it.
    fetch: guardedFetch({ allowLoopback: true, timeoutMs: 6_000 }),
    ...options,
  });
}

function request(model: string, extra: Partial<GenerateJsonRequest> = {}): GenerateJsonRequest {
  return {
    model,
    instructions: "Classify the customer's message.",
    input: { message: "My invoice for March charged me twice, please refund" },
    responseJsonSchema: CLASSIFIER_SCHEMA,
    temperature: 0.2,
    ...extra,
  };
}

async function script(model: string, answers: ScriptedAnswer[]) {
  const response = await fetch(`${standIn.base_url}/_standin/script`, {
    method: "POST",
    body: JSON.stringify({ model, answers }),
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

// deno-lint-ignore no-explicit-any
async function recorded(model: string): Promise<any[]> {
  const response = await fetch(
    `${standIn.base_url}/_standin/requests?model=${encodeURIComponent(model)}`,
  );
  return (await response.json()).requests;
}

/** The GeminiError `promise` rejects with (fails the test if it resolves or throws another). */
async function geminiFailure(promise: Promise<unknown>): Promise<GeminiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof GeminiError, `expected a GeminiError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

async function collect(events: AsyncIterable<GeminiStreamEvent>) {
  const seen: GeminiStreamEvent[] = [];
  for await (const event of events) seen.push(event);
  return seen;
}

test("structured output: valid for the schema, which is sent as responseJsonSchema", async () => {
  const model = uniqueModel();
  const result = await client().generateJson(request(model));

  assert.deepEqual(validateJson(CLASSIFIER_SCHEMA, result.output), []);
  assert.equal((result.output as { intent: string }).intent, "billing");
  assert.equal(result.simulated, false);
  assert.equal(result.attempts, 1);
  assert.equal(result.modelVersion, model);

  const [sent] = await recorded(model);
  assert.equal(sent.method, "generateContent");
  assert.equal(sent.keyAccepted, true);
  assert.deepEqual(sent.body.generationConfig.responseJsonSchema, CLASSIFIER_SCHEMA);
  assert.equal(sent.body.generationConfig.responseMimeType, "application/json");
  assert.equal(sent.body.generationConfig.temperature, 0.2);
  assert.equal(sent.body.systemInstruction.parts[0].text, "Classify the customer's message.");
  assert.equal(
    sent.body.contents[0].parts[0].text,
    JSON.stringify({ message: "My invoice for March charged me twice, please refund" }),
  );
  // The key travels in its header only, and the stand-in records no trace of it.
  assert.ok(!JSON.stringify(sent).includes(apiKey));
});

test("usage: Gemini's usageMetadata is returned per call", async () => {
  const model = uniqueModel();
  const output = { intent: "support", confidence: 0.9, summary: "refund twice charged" };
  await script(model, [{ output }]);
  const call = request(model, { instructions: "Be brief.", input: "Refund me" });
  const result = await client().generateJson(call);
  assert.deepEqual(result.output, output);
  // The stand-in counts about 4 characters a token.
  const promptTokens = estimateTokens("Be brief.Refund me");
  const candidatesTokens = estimateTokens(JSON.stringify(output));
  assert.deepEqual(result.usage, {
    promptTokens,
    candidatesTokens,
    thoughtsTokens: 0,
    totalTokens: promptTokens + candidatesTokens,
  });
});

test("inline files are sent as inlineData parts and counted", async () => {
  const model = uniqueModel();
  const pdf = new TextEncoder().encode("%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n");
  const result = await client().generateJson(
    request(model, { files: [{ mimeType: "application/pdf", data: pdf }] }),
  );
  const [sent] = await recorded(model);
  const filePart = sent.body.contents[0].parts[1];
  assert.equal(filePart.inlineData.mimeType, "application/pdf");
  assert.deepEqual(Uint8Array.from(atob(filePart.inlineData.data), (c) => c.charCodeAt(0)), pdf);
  assert.ok(result.usage.promptTokens >= TOKENS_PER_INLINE_FILE);
});

test("streaming: partial text in order, then one final result valid for the schema", async () => {
  const model = uniqueModel();
  const events = await collect(client().streamJson(request(model)));
  const partials = events.filter((event) => event.type === "partial");
  const last = events.at(-1)!;
  assert.ok(partials.length >= 2, `expected several partial events, got ${partials.length}`);
  assert.equal(last.type, "result");
  assert.equal(events.filter((event) => event.type === "result").length, 1);
  if (last.type !== "result") return;
  // The partial pieces, in order, are the answer the result parsed.
  assert.deepEqual(JSON.parse(partials.map((event) => event.text).join("")), last.result.output);
  assert.deepEqual(validateJson(CLASSIFIER_SCHEMA, last.result.output), []);
  assert.ok(last.result.usage.candidatesTokens > 0 && last.result.usage.promptTokens > 0);
  const [sent] = await recorded(model);
  assert.equal(sent.method, "streamGenerateContent");
  assert.deepEqual(sent.body.generationConfig.responseJsonSchema, CLASSIFIER_SCHEMA);
});

test("429 and 503 are retried with backoff, and the attempts are counted", async () => {
  const model = uniqueModel();
  await script(model, [{ status: 429 }, { status: 503 }]);
  const result = await client().generateJson(request(model));
  assert.deepEqual(validateJson(CLASSIFIER_SCHEMA, result.output), []);
  assert.equal(result.attempts, 3);
  const times = (await recorded(model)).map((entry) => Date.parse(entry.at));
  assert.equal(times.length, 3);
  // initialDelayMs 100, doubling: at least 100 ms, then at least 200 ms, between attempts.
  assert.ok(times[1] - times[0] >= 90, `first backoff ${times[1] - times[0]} ms`);
  assert.ok(times[2] - times[1] >= 190, `second backoff ${times[2] - times[1]} ms`);
});

test("429 on every attempt: a typed rate_limited error, mapped to 502 INTEGRATION_ERROR", async () => {
  const model = uniqueModel();
  await script(model, [{ status: 429 }, { status: 429 }, { status: 429 }, { status: 429 }]);
  const error = await geminiFailure(client().generateJson(request(model)));
  assert.equal(error.kind, "rate_limited");
  assert.equal(error.details.httpStatus, 429);
  assert.equal(error.details.geminiStatus, "RESOURCE_EXHAUSTED");
  assert.equal(error.details.attempts, 3);
  assert.equal((await recorded(model)).length, 3);
  const api = error.toApiError();
  assert.equal(api.status, 502);
  assert.equal(api.code, "INTEGRATION_ERROR");
  assert.equal(api.toBody().error.details?.reason, "rate_limited");
});

test("a 400 from Gemini is a rejected error, not retried, and its message never holds the key", async () => {
  const model = uniqueModel();
  await script(model, [{
    status: 400,
    message:
      `Invalid JSON schema for request made with key ${apiKey} (AIzaSyA1234567890abcdefghijklmnopqrstu)`,
  }]);
  const error = await geminiFailure(client().generateJson(request(model)));
  assert.equal(error.kind, "rejected");
  assert.equal(error.details.httpStatus, 400);
  assert.equal(error.details.attempts, 1);
  assert.match(error.message, /Gemini answered 400 INVALID_ARGUMENT: Invalid JSON schema/);
  const everything = JSON.stringify({
    message: error.message,
    stack: error.stack,
    details: error.details,
    body: error.toApiError().toBody(),
  });
  assert.ok(!everything.includes(apiKey), everything);
  assert.ok(!everything.includes("AIzaSyA1234567890"), everything);
  assert.match(error.message, /\[redacted\]/);
});

test("a wrong key is Gemini's 400 API_KEY_INVALID, reported without the key", async () => {
  const model = uniqueModel();
  const wrongKey = `wrong-${crypto.randomUUID()}`;
  const error = await geminiFailure(client({ apiKey: wrongKey }).generateJson(request(model)));
  assert.equal(error.kind, "rejected");
  assert.match(error.message, /API key not valid/);
  assert.ok(!JSON.stringify([error.message, error.stack, error.details]).includes(wrongKey));
  const [sent] = await recorded(model);
  assert.equal(sent.keyAccepted, false);
});

test("an answer that does not match the schema is invalid_output (502), with its usage", async () => {
  const model = uniqueModel();
  await script(model, [{ output: { intent: "weather", confidence: 3 } }, { text: "not json {" }]);
  const error = await geminiFailure(client().generateJson(request(model)));
  assert.equal(error.kind, "invalid_output");
  assert.match(error.message, /does not match the output schema: \/intent/);
  assert.deepEqual(error.details.violations?.map((violation) => violation.path), [
    "/intent",
    "/confidence",
  ]);
  assert.ok((error.details.usage?.candidatesTokens ?? 0) > 0, "the tokens spent are reported");
  assert.equal(error.toApiError().status, 502);
  // An invalid answer is not retried: Gemini answered, and answered wrong.
  assert.equal((await recorded(model)).length, 1);

  const notJson = await geminiFailure(client().generateJson(request(model)));
  assert.equal(notJson.kind, "invalid_output");
  assert.match(notJson.message, /not valid JSON/);
});

test("streaming checks the final answer against the schema too", async () => {
  const model = uniqueModel();
  await script(model, [{ output: { intent: "weather", confidence: 0.5 } }]);
  const events: GeminiStreamEvent[] = [];
  const error = await geminiFailure((async () => {
    for await (const event of client().streamJson(request(model))) events.push(event);
  })());
  assert.equal(error.kind, "invalid_output");
  assert.ok(events.length > 0 && events.every((event) => event.type === "partial"));
});

test("a stream that breaks off is a typed network error", async () => {
  const model = uniqueModel();
  await script(model, [{ break_after_chunks: 1 }]);
  const error = await geminiFailure(collect(client().streamJson(request(model))));
  assert.equal(error.kind, "network");
});

test("a blocked answer (finishReason SAFETY) is a typed blocked error", async () => {
  const model = uniqueModel();
  await script(model, [{ finish_reason: "SAFETY" }]);
  const error = await geminiFailure(client().generateJson(request(model)));
  assert.equal(error.kind, "blocked");
  assert.match(error.message, /SAFETY/);
});

test("timeout: an attempt with no answer in time is abandoned, a typed timeout error", async () => {
  const model = uniqueModel();
  await script(model, [{ delay_ms: 3_000 }, { delay_ms: 3_000 }]);
  const started = performance.now();
  const error = await geminiFailure(
    client({ timeoutMs: 300, retry: { attempts: 2, initialDelayMs: 50, maxDelayMs: 50 } })
      .generateJson(request(model)),
  );
  const elapsed = performance.now() - started;
  assert.equal(error.kind, "timeout");
  assert.match(error.message, /within 300 ms/);
  // Two attempts of 300 ms and one short backoff, far below the stand-in's 3 s delays.
  assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
  assert.equal((await recorded(model)).length, 2);
});

test("the caller's signal cancels a call in progress", async () => {
  const model = uniqueModel();
  await script(model, [{ delay_ms: 5_000 }]);
  const controller = new AbortController();
  const started = performance.now();
  const call = client().generateJson(request(model, { signal: controller.signal }));
  // Abort once the stand-in holds the request.
  while ((await recorded(model)).length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  controller.abort();
  const error = await geminiFailure(call);
  assert.equal(error.kind, "cancelled");
  assert.ok(performance.now() - started < 3_000);
  assert.equal((await recorded(model)).length, 1, "a cancelled call is not retried");
});

test("without a key, calls fail as not_configured before anything is sent", async () => {
  const model = uniqueModel();
  const error = await geminiFailure(client({ apiKey: null }).generateJson(request(model)));
  assert.equal(error.kind, "not_configured");
  assert.equal(error.toApiError().status, 502);
  assert.equal((await recorded(model)).length, 0);
});

test("the provider: sandbox callers get the simulation, which never reaches Gemini", async () => {
  // The live face is configured for the stand-in, so a call that went out would be recorded.
  Deno.env.set("GEMINI_API_KEY", apiKey);
  Deno.env.set("GEMINI_BASE_URL", standIn.base_url);
  Deno.env.set("BIVELIO_ALLOW_LOOPBACK_TARGETS", "1");
  const sandboxModel = uniqueModel();
  const sandbox = clientFor(gemini, "test");
  const result = await sandbox.generateJson(request(sandboxModel));
  assert.equal(result.simulated, true);
  assert.deepEqual(validateJson(CLASSIFIER_SCHEMA, result.output), []);
  assert.ok(result.usage.promptTokens > 0 && result.usage.candidatesTokens > 0);
  assert.equal(result.usage.totalTokens, result.usage.promptTokens + result.usage.candidatesTokens);
  const streamed = await collect(sandbox.streamJson(request(sandboxModel)));
  assert.equal(streamed.at(-1)?.type, "result");
  assert.deepEqual((await recorded(sandboxModel)).length, 0);

  // The live face of the same provider does reach it, with the same answer.
  const liveModel = uniqueModel();
  const live = await clientFor(gemini, "live").generateJson(request(liveModel));
  assert.equal(live.simulated, false);
  assert.equal((await recorded(liveModel)).length, 1);
  assert.deepEqual(live.output, result.output, "the stand-in and the simulation answer alike");
});
