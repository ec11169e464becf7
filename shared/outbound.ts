/**
 * Outbound HTTP guard (SSRF protection) for requests the API makes on a user's behalf: the
 * workflow step `http_request` and webhook deliveries.
 *
 * - Only `http:`/`https:` URLs without credentials (`user:pass@`).
 * - The host is resolved (IP literals are used as they are) and EVERY address must be public:
 *   private, loopback, link-local, CGNAT, unique-local, multicast, reserved, documentation,
 *   unspecified and cloud-metadata addresses are refused, IPv4 and IPv6, including IPv6 forms
 *   that embed an IPv4 address (mapped, compatible, NAT64, 6to4), which are judged by it.
 *   Odd IPv4 spellings (`http://2130706433/`, `http://0x7f.1/`) are normalised by `new URL()`
 *   to dotted decimal (`127.0.0.1`) before they get here, so they are judged like any other.
 * - `BIVELIO_ALLOW_LOOPBACK_TARGETS=1` (or `true`) allows loopback targets (127/8, ::1, and
 *   names resolving only to those) for the local stack and tests, over plain http even when
 *   https is required. Nothing else is allowed by it.
 * - {@link outboundFetch} validates again at every request and connects to the validated
 *   address (no second resolution, so DNS rebinding can't redirect it), follows no redirects,
 *   has a timeout and reads at most `maxResponseBytes` of the response body.
 *
 * Error messages name the URL's host and the refused address, never request headers or bodies
 * (they may carry secrets).
 */
import { promises as dnsPromises } from "node:dns";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024;

/** Why a target was refused; `message` is safe to show API users. */
export type OutboundBlockReason =
  | "invalid_url"
  | "scheme"
  | "credentials"
  | "https_required"
  | "forbidden_address";

/** The target is not allowed. The message is safe to show API users. */
export class OutboundBlockedError extends Error {
  constructor(
    readonly reason: OutboundBlockReason,
    message: string,
    /** The refused address, for `forbidden_address`. */
    readonly address?: string,
  ) {
    super(message);
    this.name = "OutboundBlockedError";
  }
}

export type OutboundNetworkErrorKind =
  | "dns" // the host name did not resolve
  | "timeout" // no complete response within timeoutMs
  | "connection" // refused, reset, unreachable, closed early
  | "tls" // handshake or certificate verification failed
  | "protocol" // the receiver's answer is not valid HTTP
  | "invalid_request"; // the method or a header name/value is not valid HTTP

/** The target is allowed but the request failed. The message is safe to show API users. */
export class OutboundNetworkError extends Error {
  constructor(readonly kind: OutboundNetworkErrorKind, message: string) {
    super(message);
    this.name = "OutboundNetworkError";
  }
}

export interface OutboundOptions {
  /** Refuse plain `http:` (except loopback targets while those are allowed). Default false. */
  requireHttps?: boolean;
  /** Allow loopback targets. Default: env BIVELIO_ALLOW_LOOPBACK_TARGETS is `1` or `true`. */
  allowLoopback?: boolean;
  /** Whole request, connection to the end of the body. Default 10 000. */
  timeoutMs?: number;
  /** Response body bytes kept; the rest is dropped and `truncated` set. Default 256 KiB. */
  maxResponseBytes?: number;
  /** Resolves a host name to IP addresses. Default: node:dns lookup (honours /etc/hosts). */
  resolve?: (host: string) => Promise<string[]>;
  /** Trusted CA certificates (PEM) for https, replacing the default set: for tests and local
   * receivers with their own CA. */
  ca?: string | string[];
}

export interface OutboundCheck {
  url: URL;
  /** Every address the host resolved to, all validated. */
  addresses: string[];
  /** All addresses are loopback (only possible when loopback targets are allowed). */
  loopback: boolean;
}

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

// ---------------------------------------------------------------------------------------------
// Address classification

interface AddressClass {
  /** A noun phrase, e.g. "a private address". */
  reason: string;
  /** Allowed when loopback targets are allowed. */
  loopback: boolean;
}

type Ipv4Range = [base: number, prefix: number, reason: string];

const ipv4 = (a: number, b: number, c: number, d: number) =>
  ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

// Most specific first: the first match names the reason.
const IPV4_FORBIDDEN: Ipv4Range[] = [
  [ipv4(169, 254, 169, 254), 32, "a cloud metadata address"],
  [ipv4(168, 63, 129, 16), 32, "a cloud metadata address"], // Azure WireServer
  [ipv4(255, 255, 255, 255), 32, "a broadcast address"],
  [ipv4(0, 0, 0, 0), 8, "an unspecified address"],
  [ipv4(10, 0, 0, 0), 8, "a private address"],
  [ipv4(100, 64, 0, 0), 10, "a shared (CGNAT) address"],
  [ipv4(127, 0, 0, 0), 8, "a loopback address"],
  [ipv4(169, 254, 0, 0), 16, "a link-local address"],
  [ipv4(172, 16, 0, 0), 12, "a private address"],
  [ipv4(192, 0, 0, 0), 24, "a reserved address"],
  [ipv4(192, 0, 2, 0), 24, "a documentation address"],
  [ipv4(192, 88, 99, 0), 24, "a reserved address"], // deprecated 6to4 relay anycast
  [ipv4(192, 168, 0, 0), 16, "a private address"],
  [ipv4(198, 18, 0, 0), 15, "a reserved (benchmarking) address"],
  [ipv4(198, 51, 100, 0), 24, "a documentation address"],
  [ipv4(203, 0, 113, 0), 24, "a documentation address"],
  [ipv4(224, 0, 0, 0), 4, "a multicast address"],
  [ipv4(240, 0, 0, 0), 4, "a reserved address"],
];

/** Strict dotted decimal (what URL parsing and resolvers produce); anything else is not IPv4. */
function parseIpv4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p, i) => p > 255 || (m[i + 1].length > 1 && m[i + 1][0] === "0"))) return null;
  return ipv4(parts[0], parts[1], parts[2], parts[3]);
}

const formatIpv4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");

/** Eight 16-bit groups; accepts brackets, `::`, a trailing dotted quad and a zone id. */
function parseIpv6(s: string): number[] | null {
  let text = s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (!text.includes(":")) return null;
  // A trailing dotted quad stands for the last two groups.
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${
      (v4 & 0xffff).toString(16)
    }`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string) =>
    h === "" ? [] : h.split(":").map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if ([...head, ...tail].some(Number.isNaN)) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  return missing >= 1 ? [...head, ...Array(missing).fill(0), ...tail] : null;
}

function classifyIpv4(n: number): AddressClass | null {
  for (const [base, prefix, reason] of IPV4_FORBIDDEN) {
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    if (((n & mask) >>> 0) === base) return { reason, loopback: n >>> 24 === 127 };
  }
  return null;
}

function embedded(v4: number, form: string, allowsLoopback: boolean): AddressClass | null {
  const inner = classifyIpv4(v4);
  if (!inner) return null;
  return {
    reason: `${inner.reason} (${formatIpv4(v4)}) in ${form}`,
    loopback: inner.loopback && allowsLoopback,
  };
}

function classifyIpv6(g: number[]): AddressClass | null {
  const v4At = (i: number) => ((g[i] << 16) | g[i + 1]) >>> 0;
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return { reason: "an unspecified address", loopback: false };
  if (zeros(0, 7) && g[7] === 1) return { reason: "a loopback address", loopback: true };
  // ::ffff:a.b.c.d is the IPv4 host itself, so a mapped loopback is loopback.
  if (zeros(0, 5) && g[5] === 0xffff) {
    return embedded(v4At(6), "an IPv4-mapped IPv6 address", true);
  }
  if (zeros(0, 6)) return embedded(v4At(6), "an IPv4-compatible IPv6 address", false);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) {
    return embedded(v4At(6), "a NAT64 IPv6 address", false);
  }
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) {
    return { reason: "a private (local-use NAT64) address", loopback: false };
  }
  if (g[0] === 0x2002) return embedded(v4At(1), "a 6to4 IPv6 address", false);
  if (g[0] === 0x0100 && zeros(1, 4)) {
    return { reason: "a reserved (discard) address", loopback: false };
  }
  if (g[0] === 0x2001 && g[1] === 0x0db8) {
    return { reason: "a documentation address", loopback: false };
  }
  if (g[0] === 0x3fff && g[1] < 0x1000) {
    return { reason: "a documentation address", loopback: false };
  }
  if (g[0] === 0x2001 && g[1] < 0x0200) {
    return { reason: "a reserved (IETF protocol assignment) address", loopback: false };
  }
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && zeros(2, 7) && g[7] === 0x254) {
    return { reason: "a cloud metadata address", loopback: false };
  }
  if ((g[0] & 0xfe00) === 0xfc00) return { reason: "a unique-local address", loopback: false };
  if ((g[0] & 0xffc0) === 0xfe80) return { reason: "a link-local address", loopback: false };
  if ((g[0] & 0xffc0) === 0xfec0) return { reason: "a site-local address", loopback: false };
  if ((g[0] & 0xff00) === 0xff00) return { reason: "a multicast address", loopback: false };
  // Global unicast is 2000::/3; everything else is unassigned or special.
  if ((g[0] & 0xe000) !== 0x2000) return { reason: "a reserved address", loopback: false };
  return null;
}

function classifyAddress(ip: string): AddressClass | null {
  const v4 = parseIpv4(ip);
  if (v4 !== null) return classifyIpv4(v4);
  const v6 = parseIpv6(ip);
  if (v6) return classifyIpv6(v6);
  return { reason: "not a valid IP address", loopback: false };
}

/**
 * Why `ip` (IPv4 dotted decimal or IPv6, brackets allowed) may not be connected to, as a noun
 * phrase ("a private address"), or null when it is public. Loopback counts as forbidden here;
 * whether it is allowed is the caller's (option `allowLoopback`). Unparseable input is refused.
 */
export function forbiddenAddressReason(ip: string): string | null {
  return classifyAddress(ip)?.reason ?? null;
}

/** A canonical text for an address, to compare addresses spelled differently. */
function addressKey(ip: string): string {
  const v4 = parseIpv4(ip);
  if (v4 !== null) return formatIpv4(v4);
  const v6 = parseIpv6(ip);
  if (!v6) return ip;
  // IPv4-mapped: the same host as the IPv4 address.
  if (v6.slice(0, 5).every((x) => x === 0) && v6[5] === 0xffff) {
    return formatIpv4(((v6[6] << 16) | v6[7]) >>> 0);
  }
  return v6.map((x) => x.toString(16)).join(":");
}

// ---------------------------------------------------------------------------------------------
// Checking a URL

function loopbackAllowedByEnv(): boolean {
  try {
    const value = Deno.env.get("BIVELIO_ALLOW_LOOPBACK_TARGETS")?.trim().toLowerCase();
    return value === "1" || value === "true";
  } catch {
    return false; // no env permission: the default, off
  }
}

async function defaultResolve(host: string): Promise<string[]> {
  const results = await dnsPromises.lookup(host, { all: true, verbatim: true });
  return results.map((r) => r.address);
}

/** The URL's host without IPv6 brackets. */
const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, "$1");

const isIpLiteral = (url: URL) => url.hostname.startsWith("[") || parseIpv4(url.hostname) !== null;

/**
 * Validates `rawUrl` as an outbound target, resolving its host. Throws
 * {@link OutboundBlockedError} when it is refused, or {@link OutboundNetworkError} (`dns`) when
 * the host does not resolve. Use it when a target is saved (webhook creation, workflow
 * validation); {@link outboundFetch} checks again at every request.
 */
export async function checkOutboundUrl(
  rawUrl: string,
  options: OutboundOptions = {},
): Promise<OutboundCheck> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new OutboundBlockedError("invalid_url", "The URL is not valid.");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OutboundBlockedError(
      "scheme",
      `The URL scheme '${url.protocol.replace(/:$/, "")}' is not allowed; use http or https.`,
    );
  }
  if (url.username || url.password) {
    throw new OutboundBlockedError(
      "credentials",
      "The URL must not contain credentials (user:password@); send them in a header.",
    );
  }
  const allowLoopback = options.allowLoopback ?? loopbackAllowedByEnv();
  const host = bareHost(url);

  let addresses: string[];
  if (isIpLiteral(url)) {
    addresses = [host];
  } else {
    try {
      addresses = await (options.resolve ?? defaultResolve)(host);
    } catch {
      throw new OutboundNetworkError("dns", `The host '${host}' could not be resolved.`);
    }
    if (addresses.length === 0) {
      throw new OutboundNetworkError("dns", `The host '${host}' could not be resolved.`);
    }
  }

  const subject = isIpLiteral(url) ? "The URL's host is" : `The host '${host}' resolves to`;
  const classes = addresses.map(classifyAddress);
  const loopback = classes.every((c) => c?.loopback === true);
  classes.forEach((c, i) => {
    // Loopback is allowed only for names resolving to nothing else.
    if (c && !(c.loopback && allowLoopback && loopback)) {
      const reason = c.loopback && allowLoopback ? `${c.reason} among other addresses` : c.reason;
      throw new OutboundBlockedError(
        "forbidden_address",
        `${subject} ${reason} (${addresses[i]}), which is not allowed.`,
        addresses[i],
      );
    }
  });

  if (url.protocol === "http:" && options.requireHttps && !(allowLoopback && loopback)) {
    throw new OutboundBlockedError("https_required", "The URL must use https.");
  }
  return { url, addresses, loopback };
}

// ---------------------------------------------------------------------------------------------
// Making the request

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

function toOutboundError(error: unknown, host: string): Error {
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

/**
 * Makes one HTTP request to a checked target: validates the URL (resolving the host) and
 * connects to a validated address. Redirects are returned, not followed. Throws
 * {@link OutboundBlockedError} or {@link OutboundNetworkError}.
 */
export async function outboundFetch(
  request: OutboundRequest,
  options: OutboundOptions = {},
): Promise<OutboundResponse> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const started = performance.now();
  const timeoutError = (host: string) =>
    new OutboundNetworkError(
      "timeout",
      `No complete response from '${host}' within ${timeoutMs} ms.`,
    );

  // The timeout covers resolving the host too.
  let resolveTimer: ReturnType<typeof setTimeout> | undefined;
  const { url, addresses } = await Promise.race([
    checkOutboundUrl(request.url, options),
    new Promise<never>((_, reject) => {
      resolveTimer = setTimeout(() => {
        let host = request.url;
        try {
          host = bareHost(new URL(request.url));
        } catch { /* checkOutboundUrl reports invalid URLs */ }
        reject(timeoutError(host));
      }, timeoutMs);
    }),
  ]).finally(() => clearTimeout(resolveTimer));
  const host = bareHost(url);

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (!DROPPED_HEADERS.has(name.toLowerCase())) headers[name] = value;
  }
  const body = typeof request.body === "string"
    ? new TextEncoder().encode(request.body)
    : request.body;
  if (body) headers["content-length"] = String(body.byteLength);

  // Pinning. fetch() can't be told which address to connect to while keeping the name for
  // the Host header, SNI and certificate check, so the request goes through node:http(s) with
  // a `lookup` that answers with the addresses validated above instead of resolving again (a
  // rebinding DNS answer is never used). The URL's host name stays the request's host, so the
  // Host header, the TLS SNI (`servername`) and certificate verification are all for the
  // name, not the IP. As a second guard, the socket's peer address is checked on connect,
  // before anything is sent. Verified on Deno 2 (tests/outbound_test.ts).
  const validated = new Set(addresses.map(addressKey));
  type LookupCallback = (
    err: Error | null,
    address: string | { address: string; family: number }[],
    family?: number,
  ) => void;
  const lookup = (_host: string, opts: { all?: boolean; family?: number }, cb: LookupCallback) => {
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

  const isHttps = url.protocol === "https:";
  const requestOptions: https.RequestOptions = {
    method: request.method,
    host,
    port: url.port ? Number(url.port) : isHttps ? 443 : 80,
    path: `${url.pathname}${url.search}`,
    headers,
    agent: false, // a fresh connection each time: no pooled socket to an older address
    lookup: lookup as unknown as https.RequestOptions["lookup"],
    ...(isHttps
      ? {
        servername: isIpLiteral(url) ? undefined : host,
        rejectUnauthorized: true,
        ...(options.ca ? { ca: options.ca } : {}),
      }
      : {}),
  };

  return await new Promise<OutboundResponse>((resolve, reject) => {
    let settled = false;
    let req: http.ClientRequest | undefined;
    const finish = (error: unknown, response?: OutboundResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        req?.destroy();
        reject(toOutboundError(error, host));
      } else resolve(response!);
    };
    const remaining = Math.max(0, timeoutMs - (performance.now() - started));
    const timer = setTimeout(() => finish(timeoutError(host)), remaining);

    try {
      req = (isHttps ? https : http).request(requestOptions, (res) => {
        const address = res.socket?.remoteAddress ?? addresses[0];
        const chunks: Uint8Array[] = [];
        let size = 0;
        let truncated = false;
        const done = () => {
          const all = new Uint8Array(size);
          let offset = 0;
          for (const chunk of chunks) {
            all.set(chunk, offset);
            offset += chunk.byteLength;
          }
          const responseHeaders: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) {
              responseHeaders[name] = Array.isArray(value) ? value.join(", ") : value;
            }
          }
          finish(null, {
            status: res.statusCode ?? 0,
            headers: responseHeaders,
            body: new TextDecoder().decode(all),
            truncated,
            durationMs: Math.round(performance.now() - started),
            address,
          });
          res.destroy();
        };
        res.on("data", (chunk: Uint8Array) => {
          if (settled) return;
          const room = maxBytes - size;
          if (chunk.byteLength > room) {
            chunks.push(chunk.subarray(0, room));
            size += room;
            truncated = true;
            done(); // stop reading: the rest is never buffered
          } else {
            chunks.push(chunk);
            size += chunk.byteLength;
          }
        });
        res.on("end", () => done());
        res.on("error", (e) => finish(e));
        res.on(
          "aborted",
          () => finish(new Error("the connection closed before the response ended")),
        );
      });
    } catch (error) {
      finish(error); // invalid method or header, thrown synchronously
      return;
    }
    req.on("error", (e) => finish(e));
    req.on("socket", (socket: Socket) => {
      const verify = () => {
        const peer = socket.remoteAddress;
        if (!peer || !validated.has(addressKey(peer))) {
          finish(
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
    req.end(body);
  });
}
