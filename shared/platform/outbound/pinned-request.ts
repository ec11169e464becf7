/**
 * One HTTP request to a target the address guard has validated, connected to one of the
 * validated addresses only.
 *
 * Pinning. fetch() can't be told which address to connect to while keeping the name for the
 * Host header, SNI and certificate check, so the request goes through node:http(s) with a
 * `lookup` that answers with the addresses validated by the guard instead of resolving again
 * (a rebinding DNS answer is never used). The URL's host name stays the request's host, so the
 * Host header, the TLS SNI (`servername`) and certificate verification are all for the name,
 * not the IP. As a second guard, the socket's peer address is checked on connect, before
 * anything is sent. Verified on Deno 2 (tests/outbound_test.ts).
 *
 * The response body is a stream (server-sent events, large downloads): the caller reads as
 * much as it wants and cancels the rest. Redirects are returned, never followed.
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import {
  addressKey,
  bareHost,
  isIpLiteral,
  OutboundBlockedError,
  type OutboundCheck,
  OutboundNetworkError,
  type OutboundNetworkErrorKind,
  parseIpv4,
} from "./address-guard.ts";

export interface PinnedRequest {
  method: string;
  /** `Host`, `Content-Length` and `Transfer-Encoding` are ignored; they are set from the URL
   * and body. */
  headers?: Record<string, string>;
  body?: Uint8Array;
}

export interface PinnedResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: ReadableStream<Uint8Array>;
  /** The address connected to. */
  address: string;
}

export interface PinnedOptions {
  /** Trusted CA certificates (PEM) for https, replacing the default set. */
  ca?: string | string[];
  /** Aborts the request, or the body's stream once the response has begun. */
  signal?: AbortSignal;
}

const DROPPED_HEADERS = new Set(["host", "content-length", "transfer-encoding"]);

function networkKind(code: string | undefined): OutboundNetworkErrorKind {
  if (!code) return "connection";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "dns";
  if (code.startsWith("HPE_")) return "protocol";
  if (
    code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || code.includes("CERT") ||
    code.startsWith("UNABLE_TO_") || code === "DEPTH_ZERO_SELF_SIGNED_CERT"
  ) return "tls";
  if (
    code === "ERR_INVALID_CHAR" || code.startsWith("ERR_INVALID_HTTP") ||
    code.startsWith("ERR_HTTP_INVALID")
  ) {
    return "invalid_request";
  }
  return "connection";
}

/** The guard's and the network's errors as they are; anything node:http throws, classified. */
export function toOutboundError(error: unknown, host: string): Error {
  if (error instanceof OutboundNetworkError || error instanceof OutboundBlockedError) return error;
  const code = (error as { code?: string })?.code;
  const kind = networkKind(code);
  if (kind === "invalid_request") {
    // Node's message may quote the header; say only what is wrong.
    return new OutboundNetworkError(kind, "The request method or a header is not valid HTTP.");
  }
  const detail = String((error as Error)?.message ?? error).slice(0, 200);
  const what = kind === "tls"
    ? "TLS with"
    : kind === "protocol"
    ? "The response from"
    : "Connection to";
  return new OutboundNetworkError(kind, `${what} '${host}' failed: ${detail}`);
}

type LookupCallback = (
  err: Error | null,
  address: string | { address: string; family: number }[],
  family?: number,
) => void;

/** A `lookup` for node:http that answers with the validated addresses only. */
function pinnedLookup(host: string, addresses: string[]) {
  return (_host: string, opts: { all?: boolean; family?: number }, cb: LookupCallback) => {
    const family = (a: string) => (parseIpv4(a) !== null ? 4 : 6);
    const wanted = opts?.family === 4 || opts?.family === 6 ? opts.family : 0;
    const list = addresses.filter((a) => !wanted || family(a) === wanted)
      .map((a) => ({ address: a, family: family(a) }));
    if (list.length === 0) {
      cb(
        Object.assign(new Error(`no IPv${wanted} address for ${host}`), { code: "ENOTFOUND" }),
        "",
      );
    } else if (opts?.all) cb(null, list);
    else cb(null, list[0].address, list[0].family);
  };
}

function flattenHeaders(headers: http.IncomingHttpHeaders) {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return flat;
}

/** The response body as a web stream with backpressure; cancelling it closes the socket. */
function bodyStream(res: http.IncomingMessage, host: string): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      // After a cancel or an error the stream takes nothing more; node may still emit.
      const safely = (step: () => void) => {
        try {
          step();
        } catch { /* the stream has ended */ }
      };
      res.on("data", (chunk: Uint8Array) => {
        safely(() => controller.enqueue(new Uint8Array(chunk)));
        if ((controller.desiredSize ?? 1) <= 0) res.pause();
      });
      res.on("end", () => safely(() => controller.close()));
      res.on("error", (error) => safely(() => controller.error(toOutboundError(error, host))));
      res.on("aborted", () =>
        safely(() =>
          controller.error(
            toOutboundError(new Error("the connection closed before the response ended"), host),
          )
        ));
    },
    pull() {
      res.resume();
    },
    cancel() {
      res.destroy();
    },
  }, { highWaterMark: 4 });
}

/**
 * Sends `request` to `check.url`, connecting only to `check.addresses`, and resolves when the
 * response's head has arrived. Throws {@link OutboundBlockedError} (the socket reached an
 * address that was not validated) or {@link OutboundNetworkError}; an abort through
 * `options.signal` rejects with the signal's reason.
 */
export function pinnedRequest(
  check: OutboundCheck,
  request: PinnedRequest,
  options: PinnedOptions = {},
): Promise<PinnedResponse> {
  const { url, addresses } = check;
  const host = bareHost(url);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (!DROPPED_HEADERS.has(name.toLowerCase())) headers[name] = value;
  }
  if (request.body) headers["content-length"] = String(request.body.byteLength);

  const isHttps = url.protocol === "https:";
  const requestOptions: https.RequestOptions = {
    method: request.method,
    host,
    port: url.port ? Number(url.port) : isHttps ? 443 : 80,
    path: `${url.pathname}${url.search}`,
    headers,
    agent: false, // a fresh connection each time: no pooled socket to an older address
    lookup: pinnedLookup(host, addresses) as unknown as https.RequestOptions["lookup"],
    ...(isHttps
      ? {
        servername: isIpLiteral(url) ? undefined : host,
        rejectUnauthorized: true,
        ...(options.ca ? { ca: options.ca } : {}),
      }
      : {}),
  };
  const validated = new Set(addresses.map(addressKey));

  return new Promise<PinnedResponse>((resolve, reject) => {
    let settled = false;
    let req: http.ClientRequest | undefined;
    const fail = (error: unknown) => {
      req?.destroy();
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener("abort", onAbort);
      reject(error);
    };
    const onAbort = () => fail(options.signal!.reason);
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });

    try {
      req = (isHttps ? https : http).request(requestOptions, (res) => {
        if (settled) return void res.destroy();
        settled = true;
        // Once the head is here the signal ends the body's stream instead.
        options.signal?.removeEventListener("abort", onAbort);
        options.signal?.addEventListener("abort", () => res.destroy(options.signal!.reason), {
          once: true,
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: flattenHeaders(res.headers),
          body: bodyStream(res, host),
          address: res.socket?.remoteAddress ?? addresses[0],
        });
      });
    } catch (error) {
      fail(toOutboundError(error, host)); // invalid method or header, thrown synchronously
      return;
    }
    req.on("error", (error) => fail(toOutboundError(error, host)));
    req.on("socket", (socket: Socket) => {
      const verify = () => {
        const peer = socket.remoteAddress;
        if (!peer || !validated.has(addressKey(peer))) {
          fail(
            new OutboundBlockedError(
              "forbidden_address",
              `The connection to '${host}' went to an address that was not validated.`,
              peer,
            ),
          );
        }
      };
      if (socket.connecting) socket.once("connect", verify);
      else verify();
    });
    req.end(request.body);
  });
}
