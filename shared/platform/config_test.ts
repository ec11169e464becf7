import assert from "node:assert/strict";
import { config, ConfigError, integer } from "./config.ts";

/** Runs `fn` with `name` set to `value` (or unset), then puts it back. */
function withEnv(name: string, value: string | undefined, fn: () => void) {
  const before = Deno.env.get(name);
  if (value === undefined) Deno.env.delete(name);
  else Deno.env.set(name, value);
  try {
    fn();
  } finally {
    if (before === undefined) Deno.env.delete(name);
    else Deno.env.set(name, before);
  }
}

Deno.test("a number setting is checked when read: the fallback when unset, a clear error when malformed", () => {
  withEnv("BIVELIO_DB_POOL_SIZE", undefined, () => assert.equal(config.dbPoolSize, 10));
  withEnv("BIVELIO_DB_POOL_SIZE", "4", () => assert.equal(config.dbPoolSize, 4));
  for (const bad of ["abc", "0", "2.5", "-3"]) {
    withEnv("BIVELIO_DB_POOL_SIZE", bad, () =>
      assert.throws(
        () => config.dbPoolSize,
        (error: Error) =>
          error instanceof ConfigError && error.message.includes("BIVELIO_DB_POOL_SIZE") &&
          error.message.includes(`'${bad}'`),
      ));
  }
  withEnv("UNIT_TEST_NUMBER", "7", () => assert.equal(integer("UNIT_TEST_NUMBER", 1, 1, 5 + 5), 7));
});

Deno.test("base URLs must be http(s) URLs and lose a trailing slash; flags are 1 or true", () => {
  withEnv(
    "WHATSAPP_API_BASE_URL",
    undefined,
    () => assert.equal(config.whatsappApiBaseUrl, "https://graph.facebook.com"),
  );
  withEnv(
    "WHATSAPP_API_BASE_URL",
    "http://127.0.0.1:9000/",
    () => assert.equal(config.whatsappApiBaseUrl, "http://127.0.0.1:9000"),
  );
  withEnv(
    "WHATSAPP_API_BASE_URL",
    "not a url",
    () => assert.throws(() => config.whatsappApiBaseUrl, /WHATSAPP_API_BASE_URL must be a URL/),
  );
  withEnv(
    "GEMINI_BASE_URL",
    "ftp://example.com",
    () => assert.throws(() => config.geminiBaseUrl, /http\(s\) URL/),
  );
  for (const [value, expected] of [["1", true], ["TRUE", true], ["0", false], [undefined, false]]) {
    withEnv(
      "BIVELIO_ALLOW_LOOPBACK_TARGETS",
      value as string | undefined,
      () => assert.equal(config.allowLoopbackTargets, expected),
    );
  }
});

Deno.test("a required setting that is missing names itself", () => {
  withEnv(
    "SUPABASE_DB_URL",
    undefined,
    () => assert.throws(() => config.databaseUrl, /SUPABASE_DB_URL is not set/),
  );
});
