/**
 * A local Gemini stand-in (local only, never deployed), speaking the REST protocol
 * `@google/genai` uses, so the live client is tested as it is and `deno task start` works
 * without a Google account:
 *
 * - `POST /v1beta/models/{model}:generateContent` and
 *   `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` (`data: {…}` events);
 * - the key in `x-goog-api-key` (or `?key=`): none is Gemini's 403, a wrong one its 400
 *   `API_KEY_INVALID`; a model name not starting with `gemini`/`gemma` is its 404;
 * - the answer: JSON valid for `generationConfig.responseJsonSchema` (or `responseSchema`),
 *   deterministic, its strings drawn from the input (shared/ai/simulation.ts, which the
 *   sandbox face uses too), with `usageMetadata` (about 4 characters a token, 258 per file).
 *
 * Scriptable for tests (answers are queued per model, so tests using their own model names
 * never take each other's):
 * - `POST /_standin/script {"model"?, "answers": [...]}`: each request for that model (any
 *   model without `model`) takes the next answer: `{"output": <JSON>}` (the model's answer),
 *   `{"text": "…"}` (raw text), `{"status": 429, "message"?}` (Gemini's error body),
 *   `{"delay_ms": n}` (alone or with another), `{"break_after_chunks": n}` (a stream that
 *   breaks off after n events), `{"finish_reason": "SAFETY"}` (an empty, blocked answer);
 * - `GET /_standin/requests?model=…`: what was received (method, model, body, headers without
 *   the key, whether the key was right); `POST /_standin/reset {"model"?}` forgets both.
 *
 * Run by local/stack.ts (env: PORT, GEMINI_API_KEY, the key it accepts); tests may also
 * start one in-process with {@link createGeminiStandIn}.
 */
import { type JsonSchema } from "../../shared/ai/json-schema.ts";
import { estimateTokens, simulateAnswer } from "../../shared/ai/simulation.ts";

export interface ScriptedAnswer {
  output?: unknown;
  text?: string;
  status?: number;
  message?: string;
  delay_ms?: number;
  break_after_chunks?: number;
  finish_reason?: string;
}

export interface RecordedRequest {
  at: string;
  method: "generateContent" | "streamGenerateContent";
  model: string;
  /** Request headers, the key left out. */
  headers: Record<string, string>;
  keyAccepted: boolean;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** gRPC status names Gemini puts in `error.status`, by HTTP status. */
const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  408: "DEADLINE_EXCEEDED",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

const DEFAULT_MESSAGES: Record<number, string> = {
  429: "Resource has been exhausted (e.g. check quota).",
  500:
    "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
  503: "The model is overloaded. Please try again later.",
};

const MAX_RECORDED = 500;

/** Gemini's error answer: `{"error":{"code","message","status"}}`. */
function geminiError(status: number, message: string, reason?: string) {
  return Response.json({
    error: {
      code: status,
      message,
      status: STATUS_NAMES[status] ?? "UNKNOWN",
      ...(reason
        ? {
          details: [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            reason,
            domain: "googleapis.com",
            metadata: { service: "generativelanguage.googleapis.com" },
          }],
        }
        : {}),
    },
  }, { status });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Part {
  text?: string;
  inlineData?: { mimeType: string; data: string };
}

function textOf(parts: Part[] | undefined) {
  return (parts ?? []).map((part) => part.text ?? "").filter(Boolean).join("\n");
}

/** What a request asks, for the simulated answer. */
// deno-lint-ignore no-explicit-any
function simulationOf(body: any) {
  const contents: { parts?: Part[] }[] = Array.isArray(body?.contents) ? body.contents : [];
  const inputText = contents.map((content) => textOf(content.parts)).join("\n");
  const system = textOf(body?.systemInstruction?.parts);
  const inlineFiles = contents.flatMap((content) => content.parts ?? [])
    .filter((part) => part.inlineData).length;
  const config = body?.generationConfig ?? {};
  const schema = (config.responseJsonSchema ?? config.responseSchema) as JsonSchema | undefined;
  return simulateAnswer({ promptText: `${system}${inputText}`, inputText, inlineFiles, schema });
}

export function createGeminiStandIn(options: { apiKey: string }) {
  const scripts = new Map<string, ScriptedAnswer[]>();
  let recorded: RecordedRequest[] = [];

  const nextScripted = (model: string) =>
    scripts.get(model)?.shift() ?? scripts.get("*")?.shift() ?? null;

  async function control(request: Request, url: URL): Promise<Response> {
    const action = url.pathname.slice("/_standin/".length);
    if (request.method === "GET" && action === "health") return Response.json({ ok: true });
    if (request.method === "GET" && action === "requests") {
      const model = url.searchParams.get("model");
      return Response.json({
        requests: model ? recorded.filter((entry) => entry.model === model) : recorded,
      });
    }
    if (request.method === "POST" && (action === "script" || action === "reset")) {
      const body = await request.json().catch(() => ({}));
      const model = typeof body?.model === "string" ? body.model : null;
      if (action === "reset") {
        if (model) {
          scripts.delete(model);
          recorded = recorded.filter((entry) => entry.model !== model);
        } else {
          scripts.clear();
          recorded = [];
        }
        return Response.json({ reset: true });
      }
      if (!Array.isArray(body?.answers)) {
        return Response.json({ error: "answers must be an array" }, { status: 400 });
      }
      const queue = scripts.get(model ?? "*") ?? [];
      queue.push(...body.answers);
      scripts.set(model ?? "*", queue);
      return Response.json({ queued: queue.length });
    }
    return Response.json({ error: "unknown stand-in control" }, { status: 404 });
  }

  function answerBody(
    model: string,
    text: string,
    usage: ReturnType<typeof usageMetadata>,
    finish?: string,
  ) {
    return {
      candidates: [{
        content: { parts: text ? [{ text }] : [], role: "model" },
        ...(finish ? { finishReason: finish } : {}),
        index: 0,
      }],
      usageMetadata: usage,
      modelVersion: model,
      responseId: "standin",
    };
  }

  function usageMetadata(promptTokens: number, candidatesTokens: number) {
    return {
      promptTokenCount: promptTokens,
      candidatesTokenCount: candidatesTokens,
      totalTokenCount: promptTokens + candidatesTokens,
      promptTokensDetails: [{ modality: "TEXT", tokenCount: promptTokens }],
    };
  }

  /** The SSE answer: the text in several `data:` events, the usage growing, the last one
   * finished. `breakAfter` cuts the connection after that many events. */
  function streamed(
    model: string,
    text: string,
    promptTokens: number,
    finish: string,
    breakAfter: number | undefined,
  ) {
    const size = Math.max(1, Math.ceil(text.length / 4));
    const pieces: string[] = [];
    for (let at = 0; at < text.length; at += size) pieces.push(text.slice(at, at + size));
    if (pieces.length === 0) pieces.push("");
    const encoder = new TextEncoder();
    let index = 0;
    let sent = "";
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (breakAfter !== undefined && index >= breakAfter) {
          // Half an event, then the end: an answer cut off mid-way.
          controller.enqueue(encoder.encode('data: {"candidates": [{"content": '));
          controller.close();
          return;
        }
        if (index >= pieces.length) {
          controller.close();
          return;
        }
        const piece = pieces[index++];
        sent += piece;
        const last = index === pieces.length;
        const event = answerBody(
          model,
          piece,
          usageMetadata(promptTokens, estimateTokens(sent)),
          last ? finish : undefined,
        );
        controller.enqueue(encoder.encode(`data: ${JSON.stringify(event)}\r\n\r\n`));
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }

  async function generate(request: Request, url: URL, match: RegExpMatchArray) {
    const [, model, method] = match as unknown as [string, string, RecordedRequest["method"]];
    const key = request.headers.get("x-goog-api-key") ?? url.searchParams.get("key");
    const headers = Object.fromEntries(
      [...request.headers].filter(([name]) => name !== "x-goog-api-key"),
    );
    const text = await request.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      // answered below, after it is recorded
    }
    const keyAccepted = key === options.apiKey;
    recorded.push({ at: new Date().toISOString(), method, model, headers, keyAccepted, body });
    if (recorded.length > MAX_RECORDED) recorded = recorded.slice(-MAX_RECORDED);

    if (!key) {
      return geminiError(
        403,
        "Method doesn't allow unregistered callers (callers without established identity). Please use API key or other form of API consumer identity to call this API.",
      );
    }
    if (!keyAccepted) {
      return geminiError(400, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID");
    }
    if (body === null || typeof body !== "object") {
      return geminiError(400, "Invalid JSON payload received.");
    }
    if (!/^(gemini|gemma)/.test(model)) {
      return geminiError(
        404,
        `models/${model} is not found for API version v1beta, or is not supported for generateContent.`,
      );
    }

    const scripted = nextScripted(model);
    if (scripted?.delay_ms) await sleep(scripted.delay_ms);
    if (scripted?.status) {
      return geminiError(
        scripted.status,
        scripted.message ?? DEFAULT_MESSAGES[scripted.status] ?? "Request failed.",
      );
    }
    const simulated = simulationOf(body);
    const blocked = scripted?.finish_reason && scripted.finish_reason !== "STOP";
    const answer = blocked ? "" : scripted?.text ??
      (scripted && "output" in scripted ? JSON.stringify(scripted.output) : simulated.text);
    const promptTokens = simulated.usage.promptTokens;
    const finish = scripted?.finish_reason ?? "STOP";
    if (method === "streamGenerateContent") {
      return streamed(model, answer, promptTokens, finish, scripted?.break_after_chunks);
    }
    return Response.json(
      answerBody(model, answer, usageMetadata(promptTokens, estimateTokens(answer)), finish),
    );
  }

  const route = /^\/v1(?:beta|alpha)?\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;

  return async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/_standin/")) return await control(request, url);
    const match = request.method === "POST" ? url.pathname.match(route) : null;
    if (!match) return geminiError(404, `No such method: ${request.method} ${url.pathname}`);
    return await generate(request, url, match);
  };
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT"));
  const apiKey = Deno.env.get("GEMINI_API_KEY");
  if (!port || !apiKey) throw new Error("PORT and GEMINI_API_KEY must be set");
  const handler = createGeminiStandIn({ apiKey });
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, handler);
  console.log(`Gemini stand-in listening on http://127.0.0.1:${port}`);
}
