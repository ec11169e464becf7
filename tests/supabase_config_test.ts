/** supabase/config.toml stays in step with the functions and migrations it deploys. */
import assert from "node:assert/strict";
import { parse } from "smol-toml";

const root = new URL("../", import.meta.url);
const config = parse(Deno.readTextFileSync(new URL("supabase/config.toml", root))) as {
  functions: Record<string, { verify_jwt: boolean; import_map: string }>;
  auth: { hook: { custom_access_token: { enabled: boolean; uri: string } } };
  db: { major_version: number };
};

Deno.test("config.toml: every function is configured, authenticates itself, and uses the import map", () => {
  const functionDirs = [...Deno.readDirSync(new URL("supabase/functions/", root))]
    .filter((entry) => entry.isDirectory && !entry.name.startsWith("_"))
    .map((entry) => entry.name)
    .sort();
  assert.deepEqual(Object.keys(config.functions).sort(), functionDirs);
  for (const [name, fn] of Object.entries(config.functions)) {
    assert.equal(
      fn.verify_jwt,
      false,
      `${name}: API keys are not JWTs, so the platform check is off`,
    );
    assert.equal(
      new URL(fn.import_map, new URL("supabase/", root)).href,
      new URL("deno.json", root).href,
    );
    Deno.statSync(new URL(`supabase/functions/${name}/index.ts`, root));
  }
});

Deno.test("config.toml: the access token hook names the function the migrations define", () => {
  const hook = config.auth.hook.custom_access_token;
  assert.equal(hook.enabled, true);
  const [, schema, fn] = /^pg-functions:\/\/postgres\/(\w+)\/(\w+)$/.exec(hook.uri) ?? [];
  const migrations = [...Deno.readDirSync(new URL("supabase/migrations/", root))]
    .map((entry) => Deno.readTextFileSync(new URL(`supabase/migrations/${entry.name}`, root)))
    .join("\n");
  assert.ok(migrations.includes(`create function ${schema}.${fn}(event jsonb)`));
  assert.equal(config.db.major_version, 15);
});
