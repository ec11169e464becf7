/**
 * The address guard (SSRF protection) for every request the API makes to a URL it did not
 * choose itself: a user's (webhooks, the workflow step `http_request`) or a provider's whose
 * base URL is configurable. This module decides whether a URL may be reached; the pinned
 * client (pinned-request.ts) then connects only to the addresses it validated.
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
 * - `outboundFetch` and `guardedFetch` (fetch.ts) validate again at every request and connect
 *   to a validated address (no second resolution, so DNS rebinding can't redirect it).
 *
 * Error messages name the URL's host and the refused address, never request headers or bodies
 * (they may carry secrets).
 */
import { promises as dnsPromises } from "node:dns";
import { config } from "../config.ts";

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
export function parseIpv4(s: string): number | null {
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
export function addressKey(ip: string): string {
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

async function defaultResolve(host: string): Promise<string[]> {
  const results = await dnsPromises.lookup(host, { all: true, verbatim: true });
  return results.map((r) => r.address);
}

/** The URL's host without IPv6 brackets. */
export const bareHost = (url: URL) => url.hostname.replace(/^\[(.*)\]$/, "$1");

export const isIpLiteral = (url: URL) =>
  url.hostname.startsWith("[") || parseIpv4(url.hostname) !== null;

/**
 * Validates `rawUrl` as an outbound target, resolving its host. Throws
 * {@link OutboundBlockedError} when it is refused, or {@link OutboundNetworkError} (`dns`) when
 * the host does not resolve. Use it when a target is saved (webhook creation, workflow
 * validation); the clients in fetch.ts check again at every request.
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
  const allowLoopback = options.allowLoopback ?? config.allowLoopbackTargets;
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
