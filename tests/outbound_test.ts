/**
 * The outbound HTTP guard (shared/platform/outbound/). No database needed: receivers are local
 * Deno.serve servers, and made-up names go through an injected resolver.
 */
import assert from "node:assert/strict";
import {
  checkOutboundUrl,
  forbiddenAddressReason,
  OutboundBlockedError,
  OutboundNetworkError,
  type OutboundOptions,
} from "../shared/platform/outbound/address-guard.ts";
import { guardedFetch, outboundFetch } from "../shared/platform/outbound/fetch.ts";

// A self-signed certificate for `receiver.test` (valid until 2126) and its key, made for these
// tests only: `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500
// -subj /CN=receiver.test -addext subjectAltName=DNS:receiver.test -addext
// basicConstraints=critical,CA:TRUE`. Not a secret.
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBoTCCAUegAwIBAgIUNyo+HqYVmNLtmL9ka1JBH0RD8wIwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNcmVjZWl2ZXIudGVzdDAgFw0yNjExMjMwNzA1MzZaGA8yMTI2
MTAzMDA3MDUzNlowGDEWMBQGA1UEAwwNcmVjZWl2ZXIudGVzdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABC3LtQpJrHiCeP8QWzDtMp/mDkIRfrvnDviza3HwOUNu
LpZg19wPbwk7U6z3DSSNvRM2eoc/zgkwolFyaukUxZKjbTBrMB0GA1UdDgQWBBQ4
hn6GZnRtE2bWSENfaQVJIQJzFjAfBgNVHSMEGDAWgBQ4hn6GZnRtE2bWSENfaQVJ
IQJzFjAYBgNVHREEETAPgg1yZWNlaXZlci50ZXN0MA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDSAAwRQIhAKfccrETcK2HWQfCqLfRp1MvS4/ESjyZpEkTQhCP
9SpsAiAYl7CdspjDCnOv7OPn0m1tlv3fIt+iimE9COeq0r8SrA==
-----END CERTIFICATE-----
`;
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpQHXii3ANFazHIZX
ZEpE9Rb4xr2sHeR5SodGt2ODy8ahRANCAAQty7UKSax4gnj/EFsw7TKf5g5CEX67
5w74s2tx8DlDbi6WYNfcD28JO1Os9w0kjb0TNnqHP84JMKJRcmrpFMWS
-----END PRIVATE KEY-----
`;

/** A public address (example.com's) that no test connects to. */
const PUBLIC_IP = "93.184.215.14";

/** A resolver from a fixed table; records every name it is asked about. */
function fakeResolver(table: Record<string, string[] | (() => string[])>) {
  const calls: string[] = [];
  const resolve = (host: string) => {
    calls.push(host);
    const entry = table[host];
    if (!entry) return Promise.reject(new Error(`ENOTFOUND ${host}`));
    return Promise.resolve(typeof entry === "function" ? entry() : entry);
  };
  return { resolve, calls };
}

/** A resolver that must not be called (IP literals are not resolved). */
const noResolve = (host: string): Promise<string[]> =>
  Promise.reject(new Error(`unexpected resolution of ${host}`));

async function assertBlocked(
  promise: Promise<unknown>,
  reason: OutboundBlockedError["reason"],
  messageIncludes?: string,
): Promise<OutboundBlockedError> {
  const error = await promise.then(
    () => assert.fail(`expected OutboundBlockedError (${reason})`),
    (e) => e,
  );
  assert.ok(error instanceof OutboundBlockedError, `not OutboundBlockedError: ${error}`);
  assert.equal(error.reason, reason, error.message);
  if (messageIncludes) assert.ok(error.message.includes(messageIncludes), error.message);
  return error;
}

async function assertNetworkError(
  promise: Promise<unknown>,
  kind: OutboundNetworkError["kind"],
): Promise<OutboundNetworkError> {
  const error = await promise.then(
    () => assert.fail(`expected OutboundNetworkError (${kind})`),
    (e) => e,
  );
  assert.ok(error instanceof OutboundNetworkError, `not OutboundNetworkError: ${error}`);
  assert.equal(error.kind, kind, error.message);
  return error;
}

interface Receiver {
  port: number;
  requests: { method: string; url: string; host: string | null; body: string }[];
}

/** Runs `fn` against a local receiver on 127.0.0.1 and closes it afterwards. */
async function withReceiver(
  handler: (req: Request) => Response | Promise<Response>,
  fn: (receiver: Receiver) => Promise<void>,
  tls?: { cert: string; key: string },
) {
  const controller = new AbortController();
  const requests: Receiver["requests"] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen() {}, ...tls },
    async (req) => {
      const body = await req.text();
      requests.push({ method: req.method, url: req.url, host: req.headers.get("host"), body });
      return handler(req);
    },
  );
  try {
    await fn({ port: server.addr.port, requests });
  } finally {
    controller.abort();
    await server.finished;
  }
}

const LOOPBACK: OutboundOptions = { allowLoopback: true };

// ---------------------------------------------------------------------------------------------

Deno.test("forbiddenAddressReason refuses every non-public class, IPv4 and IPv6", () => {
  const refused: Record<string, RegExp> = {
    "0.0.0.0": /unspecified/,
    "0.1.2.3": /unspecified/,
    "10.0.0.1": /private/,
    "100.64.0.1": /CGNAT/,
    "100.127.255.254": /CGNAT/,
    "127.0.0.1": /loopback/,
    "127.255.0.9": /loopback/,
    "169.254.169.254": /metadata/,
    "169.254.1.1": /link-local/,
    "172.16.0.1": /private/,
    "172.31.255.255": /private/,
    "192.0.0.170": /reserved/,
    "192.0.2.10": /documentation/,
    "192.168.1.1": /private/,
    "198.18.0.1": /benchmarking/,
    "198.19.255.255": /benchmarking/,
    "198.51.100.7": /documentation/,
    "203.0.113.9": /documentation/,
    "224.0.0.251": /multicast/,
    "239.255.255.250": /multicast/,
    "240.0.0.1": /reserved/,
    "255.255.255.255": /broadcast/,
    "::": /unspecified/,
    "::1": /loopback/,
    "[::1]": /loopback/,
    "0:0:0:0:0:0:0:1": /loopback/,
    "fc00::1": /unique-local/,
    "fd12:3456::1": /unique-local/,
    "fd00:ec2::254": /metadata/,
    "fe80::1": /link-local/,
    "fe80::1%eth0": /link-local/,
    "fec0::1": /site-local/,
    "ff02::1": /multicast/,
    "2001:db8::1": /documentation/,
    "100::1": /discard/,
    "::ffff:127.0.0.1": /loopback.*127\.0\.0\.1.*IPv4-mapped/,
    "::ffff:7f00:1": /loopback.*IPv4-mapped/,
    "::ffff:a9fe:a9fe": /metadata.*IPv4-mapped/,
    "::ffff:10.1.2.3": /private/,
    "::7f00:1": /loopback.*IPv4-compatible/,
    "::10.0.0.1": /private.*IPv4-compatible/,
    "64:ff9b::a9fe:a9fe": /metadata.*NAT64/,
    "64:ff9b::192.168.0.1": /private.*NAT64/,
    "2002:7f00:1::1": /loopback.*6to4/,
    "2002:c0a8:101::": /private.*6to4/,
    "not-an-ip": /not a valid IP/,
    "1.2.3": /not a valid IP/,
    "010.0.0.1": /not a valid IP/,
    "1::2::3": /not a valid IP/,
  };
  for (const [ip, pattern] of Object.entries(refused)) {
    const reason = forbiddenAddressReason(ip);
    assert.ok(reason !== null, `${ip} should be refused`);
    assert.match(reason, pattern, ip);
  }
  for (
    const ip of [
      "8.8.8.8",
      "1.1.1.1",
      PUBLIC_IP,
      "172.32.0.1",
      "100.128.0.1",
      "192.0.3.1",
      "2606:4700:4700::1111",
      "2001:4860:4860::8888",
      "::ffff:8.8.8.8",
      "64:ff9b::808:808",
      "2002:808:808::1",
    ]
  ) {
    assert.equal(forbiddenAddressReason(ip), null, `${ip} is public`);
  }
});

Deno.test("IP-literal URLs of every refused class are refused, odd IPv4 spellings included", async () => {
  const urls: Record<string, string> = {
    "http://127.0.0.1/": "127.0.0.1",
    "http://10.0.0.1/": "10.0.0.1",
    "http://169.254.169.254/latest/meta-data/": "169.254.169.254",
    "http://[::1]:8080/": "::1",
    "http://[::ffff:127.0.0.1]/": "::ffff:7f00:1",
    "http://[fd00:ec2::254]/": "fd00:ec2::254",
    "http://100.64.0.1/": "100.64.0.1",
    "http://0.0.0.0/": "0.0.0.0",
    "https://192.168.0.10/": "192.168.0.10",
    "http://[fe80::1]/": "fe80::1",
    "http://[64:ff9b::a00:1]/": "64:ff9b::a00:1",
    // new URL() normalises these to dotted decimal: 127.0.0.1, 127.0.0.1, 127.0.0.1, ...
    "http://2130706433/": "127.0.0.1",
    "http://0x7f.1/": "127.0.0.1",
    "http://0177.0.0.1/": "127.0.0.1",
    "http://127.1/": "127.0.0.1",
    "http://0/": "0.0.0.0",
    "http://0xa9fea9fe/": "169.254.169.254",
    "http://%31%30.0.0.1/": "10.0.0.1",
  };
  for (const [url, address] of Object.entries(urls)) {
    const error = await assertBlocked(
      checkOutboundUrl(url, { allowLoopback: false, resolve: noResolve }),
      "forbidden_address",
      `(${address})`,
    );
    assert.equal(error.address, address, url);
  }
});

Deno.test("allowing loopback allows only loopback", async () => {
  for (
    const url of ["http://127.0.0.1:1/", "http://[::1]/", "http://2130706433/", "http://127.9.9.9/"]
  ) {
    const checked = await checkOutboundUrl(url, { ...LOOPBACK, resolve: noResolve });
    assert.equal(checked.loopback, true, url);
  }
  for (
    const url of [
      "http://10.0.0.1/",
      "http://169.254.169.254/",
      "http://[fd00:ec2::254]/",
      "http://0.0.0.0/",
      "http://192.168.1.1/",
      // embedded loopback that does not reach this host's loopback
      "http://[64:ff9b::7f00:1]/",
      "http://[2002:7f00:1::]/",
    ]
  ) {
    await assertBlocked(
      checkOutboundUrl(url, { ...LOOPBACK, resolve: noResolve }),
      "forbidden_address",
    );
  }
  // A name resolving to loopback and something else is not a loopback target.
  const { resolve } = fakeResolver({ "mixed.test": [PUBLIC_IP, "127.0.0.1"] });
  await assertBlocked(
    checkOutboundUrl("http://mixed.test/", { ...LOOPBACK, resolve }),
    "forbidden_address",
    "(127.0.0.1)",
  );
});

Deno.test("localhost (system resolver, /etc/hosts) is refused unless loopback is allowed", async () => {
  const error = await assertBlocked(
    checkOutboundUrl("http://localhost:9/", { allowLoopback: false }),
    "forbidden_address",
    "The host 'localhost' resolves to a loopback address",
  );
  assert.ok(error.address === "127.0.0.1" || error.address === "::1", error.address);
  const checked = await checkOutboundUrl("http://localhost:9/", LOOPBACK);
  assert.equal(checked.loopback, true);
  assert.ok(checked.addresses.length > 0);
});

Deno.test("BIVELIO_ALLOW_LOOPBACK_TARGETS sets the default; off when unset", async () => {
  const saved = Deno.env.get("BIVELIO_ALLOW_LOOPBACK_TARGETS");
  try {
    for (
      const [value, allowed] of [[undefined, false], ["0", false], ["1", true], [
        "true",
        true,
      ]] as const
    ) {
      if (value === undefined) Deno.env.delete("BIVELIO_ALLOW_LOOPBACK_TARGETS");
      else Deno.env.set("BIVELIO_ALLOW_LOOPBACK_TARGETS", value);
      const result = await checkOutboundUrl("http://127.0.0.1/").then(() => true, (e) => {
        assert.ok(e instanceof OutboundBlockedError);
        return false;
      });
      assert.equal(result, allowed, `BIVELIO_ALLOW_LOOPBACK_TARGETS=${value}`);
      // Never more than loopback.
      await assertBlocked(checkOutboundUrl("http://10.0.0.1/"), "forbidden_address");
    }
    // The explicit option wins over the environment.
    Deno.env.set("BIVELIO_ALLOW_LOOPBACK_TARGETS", "1");
    await assertBlocked(
      checkOutboundUrl("http://127.0.0.1/", { allowLoopback: false }),
      "forbidden_address",
    );
  } finally {
    if (saved === undefined) Deno.env.delete("BIVELIO_ALLOW_LOOPBACK_TARGETS");
    else Deno.env.set("BIVELIO_ALLOW_LOOPBACK_TARGETS", saved);
  }
});

Deno.test("a name resolving to a private address is refused, and every address counts", async () => {
  const { resolve, calls } = fakeResolver({
    "internal.example": ["10.0.0.5"],
    "partly.example": [PUBLIC_IP, "2001:db8::5", "192.168.7.7"],
    "public.example": [PUBLIC_IP, "2606:4700:4700::1111"],
    "garbage.example": ["not-an-address"],
    "empty.example": [],
  });
  const options = { allowLoopback: false, resolve };
  await assertBlocked(
    checkOutboundUrl("https://internal.example/hook", options),
    "forbidden_address",
    "The host 'internal.example' resolves to a private address (10.0.0.5)",
  );
  await assertBlocked(
    checkOutboundUrl("https://partly.example/", options),
    "forbidden_address",
    "(2001:db8::5)",
  );
  await assertBlocked(
    checkOutboundUrl("https://garbage.example/", options),
    "forbidden_address",
  );
  const checked = await checkOutboundUrl("https://public.example/x", options);
  assert.deepEqual(checked.addresses, [PUBLIC_IP, "2606:4700:4700::1111"]);
  assert.equal(checked.loopback, false);
  assert.equal(checked.url.href, "https://public.example/x");
  await assertNetworkError(checkOutboundUrl("https://empty.example/", options), "dns");
  await assertNetworkError(checkOutboundUrl("https://unknown.example/", options), "dns");
  assert.deepEqual(calls, [
    "internal.example",
    "partly.example",
    "garbage.example",
    "public.example",
    "empty.example",
    "unknown.example",
  ]);
});

Deno.test("only http and https; no credentials; invalid URLs", async () => {
  const options = { allowLoopback: false, resolve: noResolve };
  for (
    const url of [
      "file:///etc/passwd",
      "ftp://example.com/x",
      "gopher://example.com/",
      "javascript:alert(1)",
      "data:text/plain,hi",
      "ws://example.com/",
    ]
  ) {
    await assertBlocked(checkOutboundUrl(url, options), "scheme");
  }
  for (
    const url of [
      "http://user:hunter2@example.com/",
      "https://user@example.com/",
      "https://:hunter2@example.com/",
    ]
  ) {
    const error = await assertBlocked(checkOutboundUrl(url, options), "credentials");
    assert.ok(!error.message.includes("hunter2"));
  }
  await assertBlocked(checkOutboundUrl("not a url", options), "invalid_url");
  await assertBlocked(checkOutboundUrl("http://[::1/", options), "invalid_url");
});

Deno.test("requireHttps refuses http, except loopback while loopback is allowed", async () => {
  const { resolve } = fakeResolver({
    "public.example": [PUBLIC_IP],
    "receiver.test": ["127.0.0.1"],
  });
  await assertBlocked(
    checkOutboundUrl("http://public.example/", { requireHttps: true, resolve }),
    "https_required",
  );
  await assertBlocked(
    checkOutboundUrl("http://public.example/", {
      requireHttps: true,
      allowLoopback: true,
      resolve,
    }),
    "https_required",
  );
  await checkOutboundUrl("https://public.example/", { requireHttps: true, resolve });
  await checkOutboundUrl("http://public.example/", { requireHttps: false, resolve });
  const local = await checkOutboundUrl("http://receiver.test:8000/", {
    requireHttps: true,
    allowLoopback: true,
    resolve,
  });
  assert.equal(local.loopback, true);
  await checkOutboundUrl("http://127.0.0.1:8000/", { requireHttps: true, allowLoopback: true });
  await assertBlocked(
    checkOutboundUrl("http://127.0.0.1:8000/", { requireHttps: true, allowLoopback: false }),
    "forbidden_address",
  );
});

Deno.test("a request to a local receiver returns status, headers and body", async () => {
  await withReceiver(
    (req) =>
      new Response(`echo:${new URL(req.url).search}:${req.headers.get("x-signature")}`, {
        status: 201,
        headers: { "x-receiver": "yes", "content-type": "text/plain" },
      }),
    async (receiver) => {
      const response = await outboundFetch({
        method: "POST",
        url: `http://127.0.0.1:${receiver.port}/hooks/in?a=1&b=2`,
        headers: { "x-signature": "sig-123", "content-type": "application/json" },
        body: '{"event":"contact.created","name":"Zoë"}',
      }, LOOPBACK);
      assert.equal(response.status, 201);
      assert.equal(response.headers["x-receiver"], "yes");
      assert.equal(response.headers["content-type"], "text/plain");
      assert.equal(response.body, "echo:?a=1&b=2:sig-123");
      assert.equal(response.truncated, false);
      assert.equal(response.address, "127.0.0.1");
      assert.ok(response.durationMs >= 0 && response.durationMs < 10_000);
      assert.equal(receiver.requests.length, 1);
      assert.equal(receiver.requests[0].method, "POST");
      assert.equal(receiver.requests[0].body, '{"event":"contact.created","name":"Zoë"}');

      // A Uint8Array body, and GET without one.
      await outboundFetch({
        method: "PUT",
        url: `http://127.0.0.1:${receiver.port}/bin`,
        body: new Uint8Array([104, 105]),
      }, LOOPBACK);
      assert.equal(receiver.requests[1].body, "hi");
      const get = await outboundFetch(
        { method: "GET", url: `http://127.0.0.1:${receiver.port}/` },
        LOOPBACK,
      );
      assert.equal(get.status, 201);
    },
  );
});

Deno.test("the connection goes to the validated address: a made-up name reaches the receiver", async () => {
  await withReceiver(() => new Response("pinned"), async (receiver) => {
    // receiver.test exists only in this resolver: without pinning, the system resolver would be
    // asked and fail (ENOTFOUND).
    const { resolve, calls } = fakeResolver({ "receiver.test": ["127.0.0.1"] });
    const response = await outboundFetch({
      method: "POST",
      url: `http://receiver.test:${receiver.port}/in`,
      headers: { host: "evil.example" }, // ignored: Host always names the URL's host
      body: "{}",
    }, { ...LOOPBACK, resolve });
    assert.equal(response.status, 200);
    assert.equal(response.body, "pinned");
    assert.equal(response.address, "127.0.0.1");
    assert.equal(receiver.requests.length, 1);
    assert.equal(receiver.requests[0].host, `receiver.test:${receiver.port}`);
    assert.deepEqual(
      calls,
      ["receiver.test"],
      "resolved once, at validation; not again to connect",
    );
  });
});

Deno.test("DNS rebinding: public at check time, private at request time, is refused at request time", async () => {
  await withReceiver(() => new Response("should not be reached"), async (receiver) => {
    let answers = 0;
    const { resolve } = fakeResolver({
      "rebind.example": () => (answers++ === 0 ? [PUBLIC_IP] : ["127.0.0.1"]),
    });
    const options = { allowLoopback: false, resolve };
    const url = `http://rebind.example:${receiver.port}/`;
    const checked = await checkOutboundUrl(url, options);
    assert.deepEqual(checked.addresses, [PUBLIC_IP]);
    await assertBlocked(
      outboundFetch({ method: "POST", url, body: "{}" }, options),
      "forbidden_address",
      "(127.0.0.1)",
    );
    assert.equal(receiver.requests.length, 0);

    // Same with a private answer that isn't loopback.
    let second = 0;
    const { resolve: resolve2 } = fakeResolver({
      "rebind2.example": () => (second++ === 0 ? [PUBLIC_IP] : ["10.0.0.7"]),
    });
    await checkOutboundUrl("https://rebind2.example/", { resolve: resolve2 });
    await assertBlocked(
      outboundFetch({ method: "GET", url: "https://rebind2.example/" }, { resolve: resolve2 }),
      "forbidden_address",
      "(10.0.0.7)",
    );
  });
});

Deno.test("redirects are returned, not followed", async () => {
  await withReceiver(
    (req) =>
      new URL(req.url).pathname === "/start"
        ? new Response(null, { status: 302, headers: { location: "/elsewhere" } })
        : new Response("followed"),
    async (receiver) => {
      const response = await outboundFetch({
        method: "GET",
        url: `http://127.0.0.1:${receiver.port}/start`,
      }, LOOPBACK);
      assert.equal(response.status, 302);
      assert.equal(response.headers["location"], "/elsewhere");
      assert.equal(response.body, "");
      assert.deepEqual(receiver.requests.map((r) => new URL(r.url).pathname), ["/start"]);
    },
  );
});

Deno.test("a slow receiver times out, and the error carries no headers or body", async () => {
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await withReceiver(async () => {
    await held;
    return new Response("late");
  }, async (receiver) => {
    const started = performance.now();
    try {
      const error = await assertNetworkError(
        outboundFetch({
          method: "POST",
          url: `http://127.0.0.1:${receiver.port}/slow`,
          headers: { authorization: "Bearer SECRET-TOKEN" },
          body: "SECRET-BODY",
        }, { ...LOOPBACK, timeoutMs: 300 }),
        "timeout",
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 3_000, `took ${elapsed} ms`);
      assert.match(error.message, /300 ms/);
      assert.ok(!error.message.includes("SECRET"), error.message);
    } finally {
      release();
    }
  });
});

Deno.test("the body is read up to the cap and marked truncated, even when it never ends", async () => {
  const chunk = new Uint8Array(16 * 1024).fill(97); // "aaaa…"
  await withReceiver((req) => {
    if (new URL(req.url).pathname === "/exact") return new Response("x".repeat(1000));
    // An endless body: buffering it all would never finish.
    return new Response(
      new ReadableStream({
        pull(controller) {
          controller.enqueue(chunk);
        },
      }),
    );
  }, async (receiver) => {
    const endless = await outboundFetch({
      method: "GET",
      url: `http://127.0.0.1:${receiver.port}/endless`,
    }, { ...LOOPBACK, maxResponseBytes: 100_000, timeoutMs: 5_000 });
    assert.equal(endless.status, 200);
    assert.equal(endless.truncated, true);
    assert.equal(endless.body.length, 100_000);
    assert.ok(/^a+$/.test(endless.body));

    const exact = await outboundFetch({
      method: "GET",
      url: `http://127.0.0.1:${receiver.port}/exact`,
    }, { ...LOOPBACK, maxResponseBytes: 1000 });
    assert.equal(exact.truncated, false);
    assert.equal(exact.body.length, 1000);

    const over = await outboundFetch({
      method: "GET",
      url: `http://127.0.0.1:${receiver.port}/exact`,
    }, { ...LOOPBACK, maxResponseBytes: 999 });
    assert.equal(over.truncated, true);
    assert.equal(over.body.length, 999);
  });
});

Deno.test("connection failures and invalid headers are network errors without secrets", async () => {
  // A port nobody listens on: bind one, note it, close it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await assertNetworkError(
    outboundFetch({
      method: "POST",
      url: `http://127.0.0.1:${port}/`,
      headers: { authorization: "Bearer SECRET-TOKEN" },
      body: "SECRET-BODY",
    }, LOOPBACK),
    "connection",
  );
  assert.ok(!refused.message.includes("SECRET"), refused.message);

  const invalid = await assertNetworkError(
    outboundFetch({
      method: "GET",
      url: `http://127.0.0.1:${port}/`,
      headers: { "x-api-key": "SECRET-KEY\r\nx-injected: 1" },
    }, LOOPBACK),
    "invalid_request",
  );
  assert.ok(!invalid.message.includes("SECRET"), invalid.message);
});

Deno.test("https: SNI and certificate verification use the host name, not the pinned IP", async () => {
  await withReceiver((req) => new Response(`tls:${req.headers.get("host")}`), async (receiver) => {
    const { resolve } = fakeResolver({
      "receiver.test": ["127.0.0.1"],
      "other.test": ["127.0.0.1"],
    });
    const options = { ...LOOPBACK, requireHttps: true, resolve, ca: TEST_CERT };
    const ok = await outboundFetch({
      method: "GET",
      url: `https://receiver.test:${receiver.port}/`,
    }, options);
    assert.equal(ok.status, 200);
    assert.equal(ok.body, `tls:receiver.test:${receiver.port}`);
    assert.equal(ok.address, "127.0.0.1");

    // Same server and address, but the certificate is not for other.test.
    const mismatch = await assertNetworkError(
      outboundFetch({ method: "GET", url: `https://other.test:${receiver.port}/` }, options),
      "tls",
    );
    assert.match(mismatch.message, /other\.test/);
    // Without the test CA the self-signed certificate is not trusted.
    await assertNetworkError(
      outboundFetch({ method: "GET", url: `https://receiver.test:${receiver.port}/` }, {
        ...LOOPBACK,
        resolve,
      }),
      "tls",
    );
    assert.equal(receiver.requests.length, 1);
  }, { cert: TEST_CERT, key: TEST_KEY });
});

Deno.test("the timeout also covers a resolver that never answers", async () => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const resolve = () =>
    new Promise<string[]>((resolve) => {
      timer = setTimeout(() => resolve([PUBLIC_IP]), 5_000);
    });
  const started = performance.now();
  try {
    await assertNetworkError(
      outboundFetch({ method: "GET", url: "https://stuck.example/" }, { resolve, timeoutMs: 200 }),
      "timeout",
    );
    assert.ok(performance.now() - started < 2_000);
  } finally {
    clearTimeout(timer);
  }
});

// ---------------------------------------------------------------------------------------------
// guardedFetch: the same guard as a fetch, for provider clients and SDKs

Deno.test("guardedFetch refuses private targets before connecting, like outboundFetch", async () => {
  const fetch = guardedFetch({ resolve: fakeResolver({ "inside.test": ["10.0.0.7"] }).resolve });
  await assertBlocked(fetch("http://inside.test/x"), "forbidden_address", "private");
  await assertBlocked(fetch("http://169.254.169.254/latest/meta-data"), "forbidden_address");
  const strict = guardedFetch({ allowLoopback: false });
  await assertBlocked(strict("http://127.0.0.1:9/"), "forbidden_address", "loopback");
});

Deno.test("guardedFetch is a fetch: method, headers and body go out, status and headers come back", async () => {
  const { resolve } = fakeResolver({ "provider.test": ["127.0.0.1"] });
  await withReceiver(
    (req) =>
      Response.json({ got: req.headers.get("x-api-key") }, {
        status: 201,
        headers: { "x-provider": "yes" },
      }),
    async ({ port, requests }) => {
      const fetch = guardedFetch({ ...LOOPBACK, resolve });
      const response = await fetch(`http://provider.test:${port}/v1/things?a=1`, {
        method: "POST",
        headers: { "x-api-key": "k", "content-type": "application/json" },
        body: JSON.stringify({ hello: "world" }),
      });
      assert.equal(response.status, 201);
      assert.equal(response.headers.get("x-provider"), "yes");
      assert.deepEqual(await response.json(), { got: "k" });
      assert.equal(requests[0].method, "POST");
      assert.equal(requests[0].host, `provider.test:${port}`, "the name, not the pinned IP");
      assert.equal(new URL(requests[0].url).search, "?a=1");
      assert.equal(requests[0].body, '{"hello":"world"}');
    },
  );
});

Deno.test("guardedFetch streams: the first event is readable before the server has sent the rest", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  await withReceiver(
    () => {
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode("data: first\n\n"));
          await released;
          controller.enqueue(encoder.encode("data: second\n\n"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    },
    async ({ port }) => {
      // A head timeout far shorter than the wait below: it bounds the head only.
      const fetch = guardedFetch({ ...LOOPBACK, timeoutMs: 300 });
      const response = await fetch(`http://127.0.0.1:${port}/events`);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      assert.equal((await reader.read()).value, "data: first\n\n");
      await new Promise((resolve) => setTimeout(resolve, 500));
      release();
      let rest = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        rest += chunk.value;
      }
      assert.equal(rest, "data: second\n\n");
    },
  );
});

Deno.test("guardedFetch: no head within timeoutMs is a timeout; the caller's signal aborts; redirects come back", async () => {
  await withReceiver(
    async (req) => {
      if (new URL(req.url).pathname === "/moved") {
        return new Response(null, { status: 302, headers: { location: "http://10.0.0.1/" } });
      }
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      return new Response("late");
    },
    async ({ port }) => {
      const fetch = guardedFetch({ ...LOOPBACK, timeoutMs: 200 });
      await assertNetworkError(fetch(`http://127.0.0.1:${port}/slow`), "timeout");
      const aborted = new AbortController();
      const pending = guardedFetch(LOOPBACK)(`http://127.0.0.1:${port}/slow`, {
        signal: aborted.signal,
      });
      aborted.abort(new Error("caller gave up"));
      await assert.rejects(pending, /caller gave up/);
      const moved = await guardedFetch(LOOPBACK)(`http://127.0.0.1:${port}/moved`);
      assert.equal(moved.status, 302);
      assert.equal(moved.headers.get("location"), "http://10.0.0.1/");
    },
  );
});
