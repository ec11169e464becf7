/**
 * The two ways code reaches a URL through the address guard:
 * - {@link outboundFetch}: one request, the whole answer read into memory (at most
 *   `maxResponseBytes`) within one timeout: webhook deliveries, the workflow step
 *   `http_request`.
 * - {@link guardedFetch}: a `fetch` with the same guard for clients and SDKs that take a
 *   custom fetch (provider clients whose base URL is configurable), streaming bodies included.
 * Both validate the URL at every request and connect only to the addresses validated
 * (pinned-request.ts), and neither follows redirects.
 */
import {
  bareHost,
  checkOutboundUrl,
  OutboundNetworkError,
  type OutboundOptions,
} from "./address-guard.ts";
import { pinnedRequest } from "./pinned-request.ts";

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024;

export interface OutboundRequest {
  method: string;
  url: string;
  /** `Host`, `Content-Length` and `Transfer-Encoding` are ignored; they are set from the URL
   * and body. */
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export interface OutboundResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** UTF-8 decoded, at most maxResponseBytes bytes of it. */
  body: string;
  /** The body was longer than maxResponseBytes and was cut off. */
  truncated: boolean;
  durationMs: number;
  /** The address connected to. */
  address: string;
}

/** The host a URL names, for messages (the URL itself if it does not parse). */
function hostOf(rawUrl: string) {
  try {
    return bareHost(new URL(rawUrl));
  } catch {
    return rawUrl;
  }
}

/** Rejects with the signal's reason when it aborts before `promise` settles. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** At most `maxBytes` of a stream; the rest is never read (the stream is cancelled). */
async function readAtMost(stream: ReadableStream<Uint8Array>, maxBytes: number) {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    const room = maxBytes - size;
    if (value.byteLength > room) {
      chunks.push(value.subarray(0, room));
      size += room;
      truncated = true;
      await reader.cancel();
      break;
    }
    chunks.push(value);
    size += value.byteLength;
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { bytes, truncated };
}

/**
 * Makes one HTTP request to a checked target and reads its answer: validates the URL
 * (resolving the host) and connects to a validated address; the timeout covers all of it,
 * resolution included. Redirects are returned, not followed. Throws `OutboundBlockedError` or
 * {@link OutboundNetworkError}.
 */
export async function outboundFetch(
  request: OutboundRequest,
  options: OutboundOptions = {},
): Promise<OutboundResponse> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = performance.now();
  const timedOut = new OutboundNetworkError(
    "timeout",
    `No complete response from '${hostOf(request.url)}' within ${timeoutMs} ms.`,
  );
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(timedOut), timeoutMs);
  try {
    const check = await abortable(checkOutboundUrl(request.url, options), deadline.signal);
    const body = typeof request.body === "string"
      ? new TextEncoder().encode(request.body)
      : request.body;
    const response = await pinnedRequest(
      check,
      { method: request.method, headers: request.headers, body },
      { ca: options.ca, signal: deadline.signal },
    );
    const { bytes, truncated } = await readAtMost(
      response.body,
      options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
    );
    return {
      status: response.status,
      headers: response.headers,
      body: new TextDecoder().decode(bytes),
      truncated,
      durationMs: Math.round(performance.now() - started),
      address: response.address,
    };
  } catch (error) {
    // However the stream reports the cut (an abort, a closed socket), it was the timeout.
    throw deadline.signal.aborted ? timedOut : error;
  } finally {
    clearTimeout(timer);
  }
}

/** Statuses whose responses have no body (a Response refuses one). */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

export type Fetch = (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;

/**
 * A `fetch` that goes through the address guard: for clients and SDKs that accept a custom
 * fetch. `timeoutMs` bounds the time until the response's head arrives; the body streams as
 * long as the caller reads it (its own `signal` still aborts it). Redirects come back as they
 * are (3xx), never followed. Refused targets and network failures reject with
 * `OutboundBlockedError` / {@link OutboundNetworkError}.
 */
export function guardedFetch(options: OutboundOptions = {}): Fetch {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return async function guardedFetch(input, init) {
    const request = new Request(input, init);
    const body = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const head = new AbortController();
    const timer = setTimeout(
      () =>
        head.abort(
          new OutboundNetworkError(
            "timeout",
            `No response from '${hostOf(request.url)}' within ${timeoutMs} ms.`,
          ),
        ),
      timeoutMs,
    );
    try {
      const signal = AbortSignal.any([request.signal, head.signal]);
      const check = await abortable(checkOutboundUrl(request.url, options), signal);
      // The head's timer is cleared below: from then on only the caller's signal aborts.
      const response = await pinnedRequest(
        check,
        { method: request.method, headers: Object.fromEntries(request.headers), body },
        { ca: options.ca, signal },
      );
      const nullBody = NULL_BODY_STATUSES.has(response.status) || request.method === "HEAD";
      if (nullBody) await response.body.cancel();
      return new Response(nullBody ? null : response.body, {
        status: response.status,
        headers: response.headers,
      });
    } finally {
      clearTimeout(timer);
    }
  };
}
