/**
 * The negative cases every endpoint must get right, for one line per endpoint:
 *
 *   negativeCases({ group: "contacts", action: "create", scope: "write", valid, invalid });
 *
 * `scope` is the level the action needs in its group: `write` in contacts is met by
 * `contacts:write` or the broad `write` (or `admin`, `contacts:admin`).
 *
 * Each case asserts the status, the envelope's error code and the X-Request-Id header.
 */
import assert from "node:assert/strict";
import { generateApiKey, hashApiKey } from "../../shared/api-keys/format.ts";
import {
  type Scope,
  SCOPE_GROUPS,
  SCOPE_LEVELS,
  type ScopeLevel,
} from "../../shared/platform/principal.ts";
import { MAX_JSON_DEPTH } from "../../shared/platform/storable-json.ts";
import {
  api,
  type ApiResponse,
  createTestOrg,
  db,
  signJwt,
  stack,
  test,
  type TestOrg,
} from "./stack.ts";

export interface EndpointUnderTest {
  group: string;
  action: string;
  /** The path suffix that names the action (defaults to the action). */
  suffix?: string;
  /** The scope level it needs in its group; "any" when every caller may (`auth/me`). */
  scope: ScopeLevel | "any";
  /** A suffix naming another action of the group; null when the group has no other. */
  otherSuffix?: string | null;
  /** Only user JWTs may call it (API keys get 403). */
  usersOnly?: boolean;
  /** A body `data` the endpoint accepts (made for the test org when it needs its rows). */
  valid: Record<string, unknown> | ((org: TestOrg) => Promise<Record<string, unknown>>);
  /** A body `data` it must refuse, and the field the error must name. */
  invalid: { data: Record<string, unknown>; field: string };
}

export function expectError(response: ApiResponse, status: number, code: string) {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.success, false);
  assert.equal(response.body.error.code, code, JSON.stringify(response.body));
  assert.equal(typeof response.body.error.message, "string");
  assert.ok(response.headers.get("x-request-id"), "X-Request-Id on every response");
}

/**
 * Values a careless or hostile client sends in place of any field. Each must get an answer
 * in the envelope (accepted or refused), never a 500. (A lone surrogate must be refused,
 * naming the field: the NUL case checks that.)
 */
const HOSTILE_VALUES: unknown[] = [
  null,
  true,
  -1,
  0,
  1.5,
  1e308,
  -(2 ** 63),
  Number.MAX_SAFE_INTEGER + 2,
  "",
  " ",
  "x".repeat(100_000),
  "' or 1=1 --",
  "%_\\",
  "\ud800",
  "😀",
  `ct_${"9".repeat(64)}`,
  "2026-02-30T25:61:00Z",
  [],
  [null],
  Array.from({ length: 1000 }, (_, i) => i),
  {},
  { "": "" },
  JSON.parse('{"__proto__": {"polluted": true}}'),
  { constructor: { prototype: { polluted: true } } },
];

/** Nested `levels` arrays deep. */
const nestedArrays = (levels: number): unknown => levels === 0 ? [] : [nestedArrays(levels - 1)];

// deno-lint-ignore no-explicit-any
let openApiDocument: Promise<{ paths: Record<string, any> }> | undefined;

/** The OpenAPI operation of `/<group>/<suffix>`. */
async function documentedOperation(path: string) {
  openApiDocument ??= fetch(`${stack.api_url}/v1/openapi`).then((r) => r.json());
  const operation = (await openApiDocument).paths[`/${path}`]?.post;
  assert.ok(operation, `/${path} is in the OpenAPI document`);
  return operation;
}

/** The names of the `data` fields the OpenAPI document gives for `/<group>/<suffix>`. */
async function documentedDataFields(path: string): Promise<string[]> {
  const operation = await documentedOperation(path);
  const schema = operation.requestBody?.content?.["application/json"]?.schema;
  return Object.keys(schema?.properties?.data?.properties ?? {});
}

export function negativeCases(endpoint: EndpointUnderTest) {
  const { group, action, scope } = endpoint;
  const path = `${group}/${endpoint.suffix ?? action}`;
  const name = (rule: string) => `${group}/${action}: ${rule}`;
  let org: TestOrg | undefined;
  const orgOnce = async () => (org ??= await createTestOrg());
  let body: { action: string; data: Record<string, unknown> } | undefined;
  const validBody = async () => {
    const { valid } = endpoint;
    body ??= { action, data: typeof valid === "function" ? await valid(await orgOnce()) : valid };
    return body;
  };
  /** A caller that is allowed, so that only the case under test can make it fail. */
  const allowed = async () =>
    endpoint.usersOnly
      ? { token: await (await orgOnce()).signIn() }
      : { key: await (await orgOnce()).key() };

  test(name("no credentials is 401 AUTH_INVALID_TOKEN"), async () => {
    expectError(await api(path, await validBody()), 401, "AUTH_INVALID_TOKEN");
  });

  test(name("a malformed API key is 401 AUTH_INVALID_TOKEN"), async () => {
    expectError(
      await api(path, await validBody(), { key: "bv_live_sk_not-a-real-key" }),
      401,
      "AUTH_INVALID_TOKEN",
    );
    const wellFormed = generateApiKey("live", "secret").key;
    const badChecksum = wellFormed.slice(0, -1) + (wellFormed.endsWith("A") ? "B" : "A");
    expectError(
      await api(path, await validBody(), { key: badChecksum }),
      401,
      "AUTH_INVALID_TOKEN",
    );
  });

  test(name("a well-formed key that was never issued is 401 AUTH_INVALID_TOKEN"), async () => {
    const key = generateApiKey("live", "secret").key;
    expectError(await api(path, await validBody(), { key }), 401, "AUTH_INVALID_TOKEN");
    expectError(await api(path, await validBody(), { token: key }), 401, "AUTH_INVALID_TOKEN");
  });

  test(name("a revoked key is 401 AUTH_INVALID_TOKEN"), async () => {
    const key = await (await orgOnce()).key();
    await db`update public.api_keys set revoked_at = now() where key_hash = ${hashApiKey(key)}`;
    expectError(await api(path, await validBody(), { key }), 401, "AUTH_INVALID_TOKEN");
  });

  test(name("an expired key is 401 AUTH_EXPIRED_TOKEN"), async () => {
    const key = await (await orgOnce()).key();
    await db`update public.api_keys set expires_at = now() - interval '1 second' where key_hash = ${
      hashApiKey(key)
    }`;
    expectError(await api(path, await validBody(), { key }), 401, "AUTH_EXPIRED_TOKEN");
  });

  test(name("an expired user JWT is 401 AUTH_EXPIRED_TOKEN"), async () => {
    const current = await orgOnce();
    const token = await signJwt({
      sub: current.user.id,
      role: "authenticated",
      aud: "authenticated",
      org_id: current.orgId,
      org_role: "owner",
    }, Math.floor(Date.now() / 1000) - 60);
    expectError(await api(path, await validBody(), { token }), 401, "AUTH_EXPIRED_TOKEN");
  });

  test(name("a JWT with a forged signature is 401 AUTH_INVALID_TOKEN"), async () => {
    const token = await (await orgOnce()).signIn();
    const [header, payload] = token.split(".");
    const forged = `${header}.${payload}.${"A".repeat(43)}`;
    expectError(await api(path, await validBody(), { token: forged }), 401, "AUTH_INVALID_TOKEN");
  });

  if (endpoint.usersOnly) {
    test(name("an API key, even with every scope, is 403 AUTH_INSUFFICIENT_SCOPE"), async () => {
      const key = await (await orgOnce()).key({ scopes: ["read", "write", "admin"] });
      expectError(await api(path, await validBody(), { key }), 403, "AUTH_INSUFFICIENT_SCOPE");
    });
  } else if (scope !== "any") {
    const granular = `${group}:${scope}` as Scope;
    const otherGroups = (level: ScopeLevel) =>
      SCOPE_GROUPS.filter((g) => g !== group).map((g) => `${g}:${level}` as Scope);
    /** A key with these scopes is refused, and the error names the scope it lacks. */
    const refused = async (scopes: Scope[], type: "secret" | "publishable" = "secret") => {
      const key = await (await orgOnce()).key({ type, scopes });
      const response = await api(path, await validBody(), { key });
      expectError(response, 403, "AUTH_INSUFFICIENT_SCOPE");
      assert.equal(response.body.error.details.required_scope, granular, scopes.join(" "));
      assert.ok(response.body.error.details.accepted_scopes.includes(scope));
    };

    test(
      name(`a key with other groups' admin scopes only is 403 naming '${granular}'`),
      () => refused(otherGroups("admin")),
    );

    const below = SCOPE_LEVELS.slice(0, SCOPE_LEVELS.indexOf(scope));
    if (below.length > 0) {
      test(
        name(`a key with lower levels ('${below.at(-1)}', broad and of the group) is 403`),
        () => refused(below.flatMap((level) => [level, `${group}:${level}` as Scope])),
      );
    }

    test(name(`a key with only '${granular}' is allowed`), async () => {
      const current = await orgOnce();
      const { valid } = endpoint;
      // A body of its own: the shared one may be used up (a deleted contact).
      const data = typeof valid === "function" ? await valid(current) : valid;
      const key = await current.key({ scopes: [granular] });
      const response = await api(path, { action, data }, { key });
      assert.equal(response.status, 200, JSON.stringify(response.body));
    });

    if (scope === "write" || scope === "admin") {
      test(
        name("a publishable key cannot write: 403 AUTH_INSUFFICIENT_SCOPE"),
        () => refused(["read", `${group}:read` as Scope], "publishable"),
      );
    } else {
      test(
        name("a publishable key limited to other groups' reads is 403"),
        () => refused(otherGroups("read"), "publishable"),
      );
    }
  }

  test(name("malformed JSON is 400 VALIDATION_ERROR"), async () => {
    const response = await api(path, undefined, { ...(await allowed()), raw: '{"action": "' });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, "body");
  });

  test(name("a body or data that is not an object is 400 VALIDATION_ERROR naming it"), async () => {
    const caller = await allowed();
    const notObject = await api(path, undefined, { ...caller, raw: "[]" });
    expectError(notObject, 400, "VALIDATION_ERROR");
    assert.equal(notObject.body.error.details.field, "body");
    const dataList = await api(path, { action, data: [] }, caller);
    expectError(dataList, 400, "VALIDATION_ERROR");
    assert.equal(dataList.body.error.details.field, "data");
  });

  test(name("an unknown action is 400 VALIDATION_ERROR"), async () => {
    const response = await api(group, { action: "no_such_action", data: {} }, await allowed());
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, "action");
  });

  const otherSuffix = endpoint.otherSuffix === undefined
    ? (action === "list" ? "create" : "list")
    : endpoint.otherSuffix;
  if (otherSuffix !== null) {
    test(name("a path suffix naming another action is 400 VALIDATION_ERROR"), async () => {
      const response = await api(`${group}/${otherSuffix}`, await validBody(), await allowed());
      expectError(response, 400, "VALIDATION_ERROR");
      assert.equal(response.body.error.details.constraint, "matches_path");
    });
  }

  test(name("invalid fields are 400 VALIDATION_ERROR naming the field"), async () => {
    const response = await api(path, { action, data: endpoint.invalid.data }, await allowed());
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, endpoint.invalid.field);
    assert.equal(typeof response.body.error.details.constraint, "string");
  });

  test(name("Idempotency-Key is never replayed by an action that changes nothing"), async () => {
    if ((await documentedOperation(path))["x-mutates"] !== false) return;
    const options = { ...(await allowed()), headers: { "idempotency-key": crypto.randomUUID() } };
    for (let i = 0; i < 2; i++) {
      const response = await api(path, await validBody(), options);
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.headers.get("idempotent-replayed"), null);
    }
  });

  test(name("methods other than POST are 405"), async () => {
    const response = await api(path, undefined, { ...(await allowed()), method: "GET" });
    expectError(response, 405, "METHOD_NOT_ALLOWED");
  });

  test(
    name("the allowed caller succeeds (the cases above fail for their own reason)"),
    async () => {
      const response = await api(path, await validBody(), await allowed());
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.body.success, true);
    },
  );
  test(
    name("a NUL, a lone surrogate or nesting too deep in any field is 400 naming it"),
    async () => {
      const caller = await allowed();
      const base = await validBody();
      for (const field of await documentedDataFields(path)) {
        const refused = async (value: unknown, constraint: string, named: RegExp) => {
          const response = await api(
            path,
            { action, data: { ...base.data, [field]: value } },
            caller,
          );
          expectError(response, 400, "VALIDATION_ERROR");
          assert.equal(response.body.error.details.constraint, constraint, field);
          assert.match(response.body.error.details.field, named);
        };
        await refused("a\u0000b", "no_null_character", new RegExp(`^${field}$`));
        await refused(
          { "bad\u0000key": 1 },
          "no_null_character",
          new RegExp(`^${field}\\.bad\u0000key$`),
        );
        await refused("a\ud800b", "no_lone_surrogate", new RegExp(`^${field}$`));
        await refused(
          { "bad\udc00key": 1 },
          "no_lone_surrogate",
          new RegExp(`^${field}\\.bad\udc00key$`),
        );
        await refused(nestedArrays(MAX_JSON_DEPTH), "max_depth", new RegExp(`^${field}(\\.0)+$`));
      }
    },
  );

  test(name("hostile values in any field get an answer in the envelope, never a 500"), async () => {
    const caller = await allowed();
    const base = await validBody();
    for (const field of await documentedDataFields(path)) {
      for (const value of HOSTILE_VALUES) {
        const response = await api(
          path,
          { action, data: { ...base.data, [field]: value } },
          caller,
        );
        const sent = `${field} = ${JSON.stringify(value)?.slice(0, 80)}`;
        assert.ok(
          response.status < 500,
          `${sent}: ${response.status} ${JSON.stringify(response.body)}`,
        );
        const body = envelopeOf(response);
        assert.equal(typeof body.success, "boolean", sent);
        if (!body.success) assert.equal(typeof body.error.code, "string", sent);
        assert.ok(response.headers.get("x-request-id"), sent);
      }
    }
  });
}

/** The envelope of an answer: the body, or a stream's final event's data (agents' `stream`). */
// deno-lint-ignore no-explicit-any
function envelopeOf(response: ApiResponse): any {
  if (!response.headers.get("content-type")?.startsWith("text/event-stream")) return response.body;
  const frames = String(response.body).trim().split("\n\n");
  const data = /^data: (.*)$/m.exec(frames.at(-1) ?? "")?.[1];
  return data === undefined ? {} : JSON.parse(data);
}
