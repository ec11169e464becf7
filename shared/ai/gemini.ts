/**
 * Gemini, the only model client, as a provider (shared/platform/providers.ts):
 *
 * - **live**: `@google/genai` created once per process with the key from the environment
 *   (`GEMINI_API_KEY`, never from a request), the base URL from `GEMINI_BASE_URL` (unset:
 *   Google's; locally the stand-in's), a timeout per attempt and retries with backoff on
 *   408/429/5xx (the SDK's own), every request through the address guard (`guardedFetch`);
 * - **sandbox**: {@link simulatedGemini}, which never reaches Gemini and answers what the local
 *   stand-in would (shared/ai/simulation.ts), with plausible token counts.
 *
 * Callers use a small interface of our own, {@link GeminiClient}: JSON output for a JSON
 * schema, checked against that schema before it is returned, with the usage of each call so
 * it can be recorded (also on failures that spent tokens). Every failure is a
 * {@link GeminiError} whose message is safe to show API users: never the key.
 */
import { ApiError as SdkApiError, type GenerateContentResponse, GoogleGenAI } from "@google/genai";
import { config } from "../platform/config.ts";
import { findUnstorable } from "../platform/storable-json.ts";
import { ApiError } from "../platform/errors.ts";
import { OutboundBlockedError, OutboundNetworkError } from "../platform/outbound/address-guard.ts";
import { type Fetch, guardedFetch } from "../platform/outbound/fetch.ts";
import { defineProvider } from "../platform/providers.ts";
import { type JsonSchema, validateJson } from "./json-schema.ts";
import { simulateAnswer } from "./simulation.ts";

export const DEFAULT_MODEL = "gemini-2.5-flash";

/** Token usage as records store it: thinking tokens are billed as output. */
export const tokenColumns = (usage: TokenUsage | undefined) => ({
  prompt: usage?.promptTokens ?? 0,
  output: (usage?.candidatesTokens ?? 0) + (usage?.thoughtsTokens ?? 0),
  total: usage?.totalTokens ?? 0,
});

export interface TokenUsage {
  promptTokens: number;
  /** The answer's tokens. */
  candidatesTokens: number;
  /** Thinking tokens (2.5 models think by default); billed like output. */
  thoughtsTokens: number;
  totalTokens: number;
}

/** A file sent with the prompt (a PDF, an image), inline: at most ~20 MB per request. */
export interface InlineFile {
  mimeType: string;
  data: Uint8Array;
}

export interface GenerateJsonRequest {
  model: string;
  /** The system instruction (an agent's instructions). */
  instructions?: string;
  /** The user's input: a string as it is, any other JSON value as JSON text. */
  input: unknown;
  /** The answer must be valid for this JSON schema; it is sent as Gemini's response schema. */
  responseJsonSchema: JsonSchema;
  temperature?: number;
  files?: InlineFile[];
  /** Aborting stops the generation (a client that went away). */
  signal?: AbortSignal;
}

export interface GenerateJsonResult {
  /** The parsed answer, valid for the request's schema. */
  output: unknown;
  usage: TokenUsage;
  /** The model that answered, as Gemini names it (`gemini-2.5-flash`). */
  modelVersion: string;
  /** HTTP attempts made (1 + retries); 0 for the simulation. */
  attempts: number;
  /** True when the sandbox simulation answered. */
  simulated: boolean;
}

export type GeminiStreamEvent =
  | { type: "partial"; text: string }
  | { type: "result"; result: GenerateJsonResult };

export interface GeminiClient {
  generateJson(request: GenerateJsonRequest): Promise<GenerateJsonResult>;
  /**
   * The answer's text as it is produced (`partial` events), then one `result` event, checked
   * like generateJson's. Failures, mid-stream too, are thrown as {@link GeminiError}.
   */
  streamJson(request: GenerateJsonRequest): AsyncIterable<GeminiStreamEvent>;
}

export type GeminiErrorKind =
  | "not_configured" // no key, or a base URL the address guard refuses
  | "rejected" // Gemini refused the request (4xx other than 408/429): bad key, bad model, bad schema
  | "rate_limited" // 429 after every retry
  | "unavailable" // 5xx after every retry
  | "timeout" // no (complete) answer within the timeout, after every retry
  | "network" // could not connect, or the answer broke off
  | "blocked" // no answer: the prompt or the answer was blocked (safety, recitation…)
  | "invalid_output" // the answer is not JSON valid for the schema
  | "cancelled"; // the caller's signal aborted

/**
 * A Gemini call that failed. The message is safe to show API users (status, Gemini's own
 * status and message; the key is scrubbed from everything). `usage` is set when the failed
 * call still spent tokens (an answer that does not match the schema).
 */
export class GeminiError extends Error {
  constructor(
    readonly kind: GeminiErrorKind,
    message: string,
    readonly details: {
      httpStatus?: number;
      geminiStatus?: string;
      violations?: { path: string; message: string }[];
      usage?: TokenUsage;
      /** HTTP attempts made (1 + retries). */
      attempts?: number;
    } = {},
  ) {
    super(message);
    this.name = "GeminiError";
  }

  /** The API's answer: 502 INTEGRATION_ERROR naming Gemini, what happened and its status. */
  toApiError(): ApiError {
    return new ApiError("INTEGRATION_ERROR", this.message, {
      details: {
        provider: "gemini",
        reason: this.kind,
        ...(this.details.httpStatus ? { status: this.details.httpStatus } : {}),
        ...(this.details.geminiStatus ? { gemini_status: this.details.geminiStatus } : {}),
        ...(this.details.violations ? { violations: this.details.violations } : {}),
      },
    });
  }
}

export interface GeminiClientOptions {
  /** Sent as `x-goog-api-key`; kept inside the SDK client and scrubbed from errors. */
  apiKey: string | null;
  /** Gemini's REST root (`https://generativelanguage.googleapis.com`), or a stand-in's. */
  baseUrl?: string | null;
  /** One attempt, to the end of the answer. Default 60 s. */
  timeoutMs?: number;
  /** Attempts in all (1 = no retry), and the backoff between them (doubling, jittered). */
  retry?: { attempts: number; initialDelayMs: number; maxDelayMs: number };
  /** The fetch the SDK uses; default the address guard's (`guardedFetch`). */
  fetch?: Fetch;
}

export const DEFAULT_RETRY = { attempts: 3, initialDelayMs: 1000, maxDelayMs: 8000 };
/** Retried: Gemini's transient statuses (the SDK's default list, stated). */
const RETRIED_STATUSES = [408, 429, 500, 502, 503, 504];
const MAX_MESSAGE_LENGTH = 300;

/** `text` without the key, nor anything shaped like a Google API key or a `key=` parameter. */
function scrub(text: string, apiKey: string | null) {
  let safe = apiKey ? text.replaceAll(apiKey, "[redacted]") : text;
  safe = safe.replace(/AIza[0-9A-Za-z_-]{20,}/g, "[redacted]")
    .replace(/([?&]key=)[^&\s"']+/gi, "$1[redacted]");
  return safe.length > MAX_MESSAGE_LENGTH ? `${safe.slice(0, MAX_MESSAGE_LENGTH)}…` : safe;
}

/** Gemini's error body (`{"error":{"code","message","status"}}`) inside an SDK error message. */
function geminiErrorBody(message: string): { message?: string; status?: string } {
  const start = message.indexOf("{");
  if (start === -1) return { message };
  try {
    const body = JSON.parse(message.slice(start));
    const error = body?.error;
    return typeof error === "object" && error !== null
      ? { message: String(error.message ?? ""), status: error.status && String(error.status) }
      : { message };
  } catch {
    return { message };
  }
}

const kindOfStatus = (status: number): GeminiErrorKind =>
  status === 429
    ? "rate_limited"
    : status === 408
    ? "timeout"
    : status >= 500
    ? "unavailable"
    : "rejected";

/** Any failure of a live call as a {@link GeminiError} with a safe message. */
function toGeminiError(
  error: unknown,
  context: { apiKey: string | null; signal?: AbortSignal; timeoutMs: number; attempts: number },
): GeminiError {
  const mapped = geminiErrorOf(error, context);
  mapped.details.attempts ??= context.attempts;
  return mapped;
}

function geminiErrorOf(
  error: unknown,
  context: { apiKey: string | null; signal?: AbortSignal; timeoutMs: number },
): GeminiError {
  if (error instanceof GeminiError) return error;
  if (context.signal?.aborted) {
    return new GeminiError("cancelled", "The Gemini call was cancelled.");
  }
  if (error instanceof SdkApiError) {
    const body = geminiErrorBody(error.message);
    const kind = kindOfStatus(error.status);
    const what = [body.status, body.message].filter(Boolean).join(": ");
    return new GeminiError(
      kind,
      scrub(`Gemini answered ${error.status}${what ? ` ${what}` : ""}`, context.apiKey),
      { httpStatus: error.status, geminiStatus: body.status },
    );
  }
  if (error instanceof OutboundBlockedError) {
    return new GeminiError(
      "not_configured",
      scrub(`Gemini's base URL is refused: ${error.message}`, context.apiKey),
    );
  }
  const name = (error as { name?: string })?.name;
  if (
    name === "AbortError" || name === "TimeoutError" ||
    (error instanceof OutboundNetworkError && error.kind === "timeout")
  ) {
    return new GeminiError(
      "timeout",
      `Gemini did not answer within ${context.timeoutMs} ms.`,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new GeminiError(
    "network",
    scrub(`The Gemini request failed: ${message}`, context.apiKey),
  );
}

/** The text of an answer: its first candidate's text parts, thoughts left out. */
function answerText(response: GenerateContentResponse) {
  const parts = response.candidates?.[0]?.content?.parts ?? [];
  return parts.filter((part) => typeof part.text === "string" && !part.thought)
    .map((part) => part.text).join("");
}

function usageOf(response: GenerateContentResponse | undefined): TokenUsage {
  const usage = response?.usageMetadata;
  const promptTokens = usage?.promptTokenCount ?? 0;
  const candidatesTokens = usage?.candidatesTokenCount ?? 0;
  const thoughtsTokens = usage?.thoughtsTokenCount ?? 0;
  return {
    promptTokens,
    candidatesTokens,
    thoughtsTokens,
    totalTokens: usage?.totalTokenCount ?? promptTokens + candidatesTokens + thoughtsTokens,
  };
}

/** The input as the text sent: strings as they are, other JSON values as JSON. */
export const inputText = (input: unknown) =>
  typeof input === "string" ? input : JSON.stringify(input) ?? "";

/**
 * Parses and checks an answer against the schema asked for; an answer that is not JSON, not
 * valid for the schema, or not storable, is `invalid_output` (carrying the usage spent).
 */
function checkedOutput(text: string, schema: JsonSchema, usage: TokenUsage): unknown {
  let output: unknown;
  try {
    output = JSON.parse(text);
  } catch {
    throw new GeminiError("invalid_output", "Gemini's answer is not valid JSON.", { usage });
  }
  const violations = validateJson(schema, output).slice(0, 5);
  if (violations.length > 0) {
    const first = violations[0];
    throw new GeminiError(
      "invalid_output",
      `Gemini's answer does not match the output schema: ${
        first.path || "(the answer)"
      }: ${first.message}`,
      { violations, usage },
    );
  }
  // Valid JSON PostgreSQL cannot keep (a lone surrogate, a NUL): refused like a bad answer.
  const unstorable = findUnstorable(output);
  if (unstorable) {
    throw new GeminiError(
      "invalid_output",
      `Gemini's answer cannot be stored (${unstorable.problem.replace("_", " ")} at /${
        unstorable.path.join("/")
      }).`,
      { usage },
    );
  }
  return output;
}

/** The reason an answer has no text: a blocked prompt, or a candidate that stopped early. */
function blockedReason(response: GenerateContentResponse | undefined): string | null {
  const blocked = response?.promptFeedback?.blockReason;
  if (blocked) return `the prompt was blocked (${blocked})`;
  const candidate = response?.candidates?.[0];
  if (!candidate) return "no answer was returned";
  const reason = candidate.finishReason;
  if (reason && reason !== "STOP" && reason !== "MAX_TOKENS") {
    return `the answer stopped (${reason})`;
  }
  return null;
}

/** The live client: `@google/genai` against `options.baseUrl`. */
export function createGeminiClient(options: GeminiClientOptions): GeminiClient {
  const apiKey = options.apiKey;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const retry = options.retry ?? DEFAULT_RETRY;
  // The guard's own deadline covers only the response head; the SDK's timeout, armed per
  // attempt until the body is read, is the one that decides, so the guard's comes later.
  const baseFetch = options.fetch ?? guardedFetch({ timeoutMs: timeoutMs + 1000 });
  const sdk = apiKey
    ? new GoogleGenAI({
      apiKey,
      httpOptions: {
        ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
        timeout: timeoutMs,
        retryOptions: {
          attempts: retry.attempts,
          initialDelay: retry.initialDelayMs / 1000,
          maxDelay: retry.maxDelayMs / 1000,
          httpStatusCodes: RETRIED_STATUSES,
        },
      },
    })
    : null;
  const context = (signal: AbortSignal | undefined, attempts: number) => ({
    apiKey,
    signal,
    timeoutMs,
    attempts,
  });

  /** The SDK's parameters for a request, with a fetch that counts this call's attempts. */
  function parameters(request: GenerateJsonRequest, counter: { attempts: number }) {
    if (!sdk) {
      throw new GeminiError("not_configured", "Gemini is not configured (GEMINI_API_KEY).");
    }
    const countingFetch: Fetch = (input, init) => {
      counter.attempts++;
      return baseFetch(input, init);
    };
    const files = (request.files ?? []).map((file) => ({
      inlineData: { mimeType: file.mimeType, data: base64Of(file.data) },
    }));
    return {
      sdk,
      params: {
        model: request.model,
        contents: [{ role: "user", parts: [{ text: inputText(request.input) }, ...files] }],
        config: {
          ...(request.instructions ? { systemInstruction: request.instructions } : {}),
          ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
          responseMimeType: "application/json",
          responseJsonSchema: request.responseJsonSchema,
          abortSignal: request.signal,
          httpOptions: { fetch: countingFetch },
        },
      },
    };
  }

  function finish(
    text: string,
    last: GenerateContentResponse | undefined,
    request: GenerateJsonRequest,
    attempts: number,
  ): GenerateJsonResult {
    const usage = usageOf(last);
    const blocked = text === "" ? blockedReason(last) : null;
    if (blocked) {
      throw new GeminiError("blocked", `Gemini gave no answer: ${blocked}.`, { usage });
    }
    return {
      output: checkedOutput(text, request.responseJsonSchema, usage),
      usage,
      modelVersion: last?.modelVersion ?? request.model,
      attempts,
      simulated: false,
    };
  }

  return {
    async generateJson(request) {
      const counter = { attempts: 0 };
      try {
        const { sdk, params } = parameters(request, counter);
        const response = await sdk.models.generateContent(params);
        return finish(answerText(response), response, request, counter.attempts);
      } catch (error) {
        throw toGeminiError(error, context(request.signal, counter.attempts));
      }
    },
    async *streamJson(request) {
      let text = "";
      let last: GenerateContentResponse | undefined;
      let usage: GenerateContentResponse["usageMetadata"];
      const counter = { attempts: 0 };
      try {
        const { sdk, params } = parameters(request, counter);
        const stream = await sdk.models.generateContentStream(params);
        for await (const chunk of stream) {
          // Each chunk carries the usage so far; the last one that has it counts.
          usage = chunk.usageMetadata ?? usage;
          last = chunk;
          const piece = answerText(chunk);
          if (piece) {
            text += piece;
            yield { type: "partial", text: piece };
          }
        }
      } catch (error) {
        throw toGeminiError(error, context(request.signal, counter.attempts));
      }
      const final = { ...last, usageMetadata: usage } as GenerateContentResponse;
      yield { type: "result", result: finish(text, final, request, counter.attempts) };
    },
  };
}

function base64Of(bytes: Uint8Array) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * The sandbox face: answers at once, deterministically, with output valid for the schema
 * (the stand-in's answer) and token counts estimated like Gemini's; never reaches Gemini.
 */
export const simulatedGemini: GeminiClient = {
  generateJson(request) {
    if (request.signal?.aborted) {
      return Promise.reject(new GeminiError("cancelled", "The Gemini call was cancelled."));
    }
    try {
      const answer = simulate(request);
      return Promise.resolve({
        output: checkedOutput(answer.text, request.responseJsonSchema, answer.usage),
        usage: answer.usage,
        modelVersion: request.model,
        attempts: 0,
        simulated: true,
      });
    } catch (error) {
      return Promise.reject(error);
    }
  },
  async *streamJson(request) {
    const result = await this.generateJson(request);
    const text = JSON.stringify(result.output);
    const size = Math.max(1, Math.ceil(text.length / 4));
    for (let at = 0; at < text.length; at += size) {
      yield { type: "partial", text: text.slice(at, at + size) };
    }
    yield { type: "result", result };
  },
};

function simulate(request: GenerateJsonRequest) {
  const input = inputText(request.input);
  return simulateAnswer({
    promptText: `${request.instructions ?? ""}${input}`,
    inputText: input,
    inlineFiles: request.files?.length ?? 0,
    schema: request.responseJsonSchema,
  });
}

/** Gemini as a provider; `clientFor(gemini, environment)` gives the face for a caller. */
export const gemini = defineProvider<GeminiClient>({
  name: "gemini",
  description: "Google Gemini (@google/genai); local stand-in: local/stand-ins/gemini.ts",
  live: () =>
    createGeminiClient({
      apiKey: config.geminiApiKey,
      baseUrl: config.geminiBaseUrl,
      timeoutMs: config.geminiTimeoutMs,
    }),
  sandbox: () => simulatedGemini,
});
