/**
 * Sign-in limits at POST /v1/auth/token: failed attempts per email and per client address,
 * 429 with Retry-After past them, windows tested by moving attempts back in the database.
 * Each test connects from its own loopback address (127.0.0.x), which the gateway passes
 * on as the client address, so the tests cannot use up each other's limits.
 * Also: Supabase Auth's own 429 and the address forwarded to it (the auth function run in
 * this process against a fake Auth), and the Auth emulator's timing for unknown emails.
 */
import assert from "node:assert/strict";
import { type ApiResponse, createTestOrg, db, stack, test } from "./helpers/stack.ts";

const clients = new Map<string, Deno.HttpClient>();

/** POST /v1/auth/token from the loopback address `from`, through the gateway. */
async function token(
  from: string,
  grant: "password" | "refresh_token",
  body: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  if (!clients.has(from)) clients.set(from, Deno.createHttpClient({ localAddress: from }));
  const response = await fetch(`${stack.api_url}/v1/auth/token?grant_type=${grant}`, {
    method: "POST",
    headers: { apikey: stack.anon_key, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    client: clients.get(from),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

const unknownEmail = () => `nobody-${crypto.randomUUID()}@test.example`;

function assertLimited(response: ApiResponse, kind: "email" | "address", window = 900) {
  assert.equal(response.status, 429, JSON.stringify(response.body));
  const { error } = response.body;
  assert.equal(error.code, "RATE_LIMIT_EXCEEDED");
  assert.match(error.message, kind === "email" ? /for this email/ : /from this address/);
  assert.ok(
    Number.isInteger(error.retry_after) && error.retry_after >= 1 &&
      error.retry_after <= window,
    `retry_after within the window: ${error.retry_after}`,
  );
  assert.equal(response.headers.get("retry-after"), String(error.retry_after));
}

/** As if the subject's attempts had been made `seconds` earlier. */
async function age(subject: string, seconds: number) {
  await db`
    update private.sign_in_attempts
    set attempted_at = attempted_at - make_interval(secs => ${seconds})
    where subject = ${subject}
  `;
}

test("100 wrong passwords for one email at once: 10 are tried, 90 get 429 with Retry-After", async () => {
  const org = await createTestOrg();
  const from = "127.0.0.11";
  const wrong = { email: org.user.email, password: "wrong" };
  const answers = await Promise.all(
    Array.from({ length: 100 }, () => token(from, "password", wrong)),
  );
  const statuses = answers.map((answer) => answer.status);
  assert.equal(statuses.filter((status) => status === 401).length, 10, String(statuses));
  assert.equal(statuses.filter((status) => status === 429).length, 90, String(statuses));
  for (const answer of answers.filter((answer) => answer.status === 429)) {
    assertLimited(answer, "email");
    // The first failures were just now: the email is free again in about 15 minutes.
    assert.ok(answer.body.error.retry_after >= 880, String(answer.body.error.retry_after));
  }

  // The right password is refused too while the email is limited, from any address.
  const right = { email: org.user.email, password: org.user.password };
  assertLimited(await token(from, "password", right), "email");
  assertLimited(await token("127.0.0.12", "password", right), "email");
  // Another user from another address is not affected.
  const other = await createTestOrg();
  const otherSignIn = await token("127.0.0.12", "password", {
    email: other.user.email,
    password: other.user.password,
  });
  assert.equal(otherSignIn.status, 200, JSON.stringify(otherSignIn.body));

  // Once the failures are older than the window (15 minutes), the right password works,
  // and it clears the email's failures.
  const subject = `email:${org.user.email.toLowerCase()}`;
  await age(subject, 890);
  const almost = await token(from, "password", right);
  assertLimited(almost, "email");
  assert.ok(almost.body.error.retry_after <= 10, String(almost.body.error.retry_after));
  await age(subject, 10);
  const signedIn = await token(from, "password", right);
  assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
  const [{ count }] = await db`
    select count(*)::int from private.sign_in_attempts where subject = ${subject}
  `;
  assert.equal(count, 0);
});

test("a successful sign-in resets the email's failures and is not counted itself", async () => {
  const org = await createTestOrg();
  const from = "127.0.0.13";
  const wrong = { email: org.user.email, password: "wrong" };
  const right = { email: org.user.email, password: org.user.password };
  for (let round = 0; round < 3; round++) {
    for (let n = 0; n < 9; n++) assert.equal((await token(from, "password", wrong)).status, 401);
    assert.equal((await token(from, "password", right)).status, 200);
  }
  // 27 failures from this address so far, 3 below its limit; successes count for nothing.
  for (let n = 0; n < 10; n++) assert.equal((await token(from, "password", right)).status, 200);
  for (let n = 0; n < 3; n++) {
    assert.equal((await token(from, "password", { ...wrong, email: unknownEmail() })).status, 401);
  }
  assertLimited(await token(from, "password", right), "address");
});

test("30 failures from one address, each for another email: 429 for every email from it", async () => {
  const from = "127.0.0.14";
  const answers = await Promise.all(
    Array.from(
      { length: 35 },
      () => token(from, "password", { email: unknownEmail(), password: "guess" }),
    ),
  );
  const statuses = answers.map((answer) => answer.status);
  assert.equal(statuses.filter((status) => status === 401).length, 30, String(statuses));
  for (const answer of answers.filter((answer) => answer.status === 429)) {
    assertLimited(answer, "address");
  }
  const org = await createTestOrg();
  const right = { email: org.user.email, password: org.user.password };
  assertLimited(await token(from, "password", right), "address");
  // What the client writes into X-Forwarded-For itself is not its address.
  assertLimited(
    await token(from, "password", right, { "x-forwarded-for": "198.51.100.7" }),
    "address",
  );
  // The same user from another address signs in.
  assert.equal((await token("127.0.0.15", "password", right)).status, 200);
  // And from this one once its failures have left the window.
  await age(`address:${from}`, 900);
  assert.equal((await token(from, "password", right)).status, 200);
});

test("refresh_token grant: failed refreshes count against the address", async () => {
  const org = await createTestOrg();
  const signedIn = await token("127.0.0.16", "password", {
    email: org.user.email,
    password: org.user.password,
  });
  const from = "127.0.0.17";
  for (let n = 0; n < 30; n++) {
    const answer = await token(from, "refresh_token", { refresh_token: `forged-${n}` });
    assert.equal(answer.status, 401, JSON.stringify(answer.body));
  }
  const valid = { refresh_token: signedIn.body.refresh_token };
  assertLimited(await token(from, "refresh_token", valid), "address");
  const refreshed = await token("127.0.0.16", "refresh_token", valid);
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
});

test("an IPv6 client is counted by its /64; attempts older than every window are purged", async () => {
  const [{ v6, v4 }] = await db`
    select private.sign_in_address_subject('2001:db8:1:2:3:4:5:6') as v6,
           private.sign_in_address_subject('203.0.113.7') as v4
  `;
  assert.deepEqual([v6, v4], ["address:2001:db8:1:2::", "address:203.0.113.7"]);

  const subject = `email:purge-${crypto.randomUUID()}@test.example`;
  await db`
    insert into private.sign_in_attempts (subject, attempted_at)
    values (${subject}, now() - interval '16 minutes'), (${subject}, now() - interval '14 minutes')
  `;
  await db`select private.purge_sign_in_attempts()`;
  const left = await db`select from private.sign_in_attempts where subject = ${subject}`;
  assert.equal(left.length, 1);
  const [job] = await db`
    select schedule, command from cron.job where jobname = 'bivelio-purge-sign-in-attempts'
  `;
  assert.deepEqual({ ...job }, {
    schedule: "*/5 * * * *",
    command: "select private.purge_sign_in_attempts()",
  });
});

/**
 * A fake Supabase Auth in this process: answers the token endpoint with `reply` and records
 * what the function sent.
 */
function fakeAuth() {
  const seen: Headers[] = [];
  let reply = () => Response.json({}, { status: 500 });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    seen.push(request.headers);
    return reply();
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    seen,
    answer(next: () => Response) {
      reply = next;
    },
    stop: () => server.shutdown(),
  };
}

const GOTRUE_HEADERS = { "x-supabase-api-version": "2024-01-01" };
const gotrueRateLimited = (retryAfter?: string) =>
  Response.json({ code: "over_request_rate_limit", message: "Request rate limit reached" }, {
    status: 429,
    headers: { ...GOTRUE_HEADERS, ...(retryAfter ? { "retry-after": retryAfter } : {}) },
  });

test("Auth's 429 stays 429 with its Retry-After; the client's address goes to Auth in Sb-Forwarded-For", async () => {
  const auth = fakeAuth();
  const env = {
    SUPABASE_URL: auth.url,
    SUPABASE_DB_URL: stack.db_url,
    SUPABASE_ANON_KEY: "project-anon-key",
    BIVELIO_AUTH_SECRET_KEY: "sb_secret_project",
  };
  for (const [name, value] of Object.entries(env)) Deno.env.set(name, value);
  const { default: app } = await import("../shared/auth/app.ts");
  const { closeDb } = await import("../shared/platform/db.ts");
  // As Supabase's proxy would pass it: the client forged the first entry.
  const address = "203.0.113.9";
  const call = async (apikey = "project-anon-key") => {
    const response = await app.request("http://local/auth/token?grant_type=password", {
      method: "POST",
      headers: {
        apikey,
        "content-type": "application/json",
        "x-forwarded-for": `198.51.100.1, ${address}`,
      },
      body: JSON.stringify({ email: "someone@test.example", password: "pw" }),
    });
    return { status: response.status, headers: response.headers, body: await response.json() };
  };
  try {
    auth.answer(() => gotrueRateLimited("17"));
    const limited = await call();
    assert.equal(limited.status, 429, JSON.stringify(limited.body));
    assert.equal(limited.body.error.code, "RATE_LIMIT_EXCEEDED");
    assert.equal(limited.body.error.retry_after, 17);
    assert.equal(limited.headers.get("retry-after"), "17");
    // Auth was called with the secret key and the client's address (not the forged one).
    assert.equal(auth.seen.length, 1);
    assert.equal(auth.seen[0].get("apikey"), "sb_secret_project");
    assert.equal(auth.seen[0].get("sb-forwarded-for"), address);

    auth.answer(() => gotrueRateLimited());
    const noHeader = await call();
    assert.equal(noHeader.status, 429);
    assert.equal(noHeader.body.error.retry_after, 60);
    assert.equal(noHeader.headers.get("retry-after"), "60");
    // Auth's refusals are not the caller's failures.
    const [{ count }] = await db`
      select count(*)::int from private.sign_in_attempts where subject = ${`address:${address}`}
    `;
    assert.equal(count, 0);

    // With the secret key in use, the caller's apikey is checked here: Auth no longer does.
    const foreignKey = await call("some-other-projects-key");
    assert.equal(foreignKey.status, 401);
    assert.equal(foreignKey.body.error.code, "AUTH_INVALID_TOKEN");
    assert.equal(auth.seen.length, 2);

    // Without a secret key the caller's key goes to Auth, and no address.
    Deno.env.delete("BIVELIO_AUTH_SECRET_KEY");
    await call();
    assert.equal(auth.seen[2].get("apikey"), "project-anon-key");
    assert.equal(auth.seen[2].get("sb-forwarded-for"), null);
  } finally {
    for (const name of Object.keys(env)) Deno.env.delete(name);
    await closeDb();
    await auth.stop();
  }
});

test("Auth emulator: an unknown email takes as long as a known one with a wrong password", async () => {
  // A cost high enough that comparing the password dominates the request's time.
  const email = `timing-${crypto.randomUUID()}@test.example`;
  await db`
    insert into auth.users (email, encrypted_password, email_confirmed_at)
    values (${email}, extensions.crypt('right', extensions.gen_salt('bf', 8)), now())
  `;
  const signIn = async (address: string) => {
    const started = performance.now();
    const response = await fetch(`${stack.api_url}/auth/v1/token?grant_type=password`, {
      method: "POST",
      headers: { apikey: stack.anon_key, "content-type": "application/json" },
      body: JSON.stringify({ email: address, password: "wrong" }),
    });
    await response.body?.cancel();
    assert.equal(response.status, 400);
    return performance.now() - started;
  };
  const known: number[] = [];
  const unknown: number[] = [];
  for (let n = 0; n < 15; n++) {
    known.push(await signIn(email));
    unknown.push(await signIn(unknownEmail()));
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1];
  const ratio = median(unknown) / median(known);
  assert.ok(
    ratio >= 0.5 && ratio <= 2,
    `unknown ${median(unknown).toFixed(1)} ms, known ${median(known).toFixed(1)} ms`,
  );
});
