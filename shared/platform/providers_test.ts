import assert from "node:assert/strict";
import { clientFor, definedProviders, defineProvider } from "./providers.ts";

Deno.test("clientFor gives sandbox callers the simulation and live callers the real client", () => {
  let built = 0;
  const provider = defineProvider({
    name: `unit_${crypto.randomUUID()}`,
    description: "a provider for this test",
    live: () => ({ face: "live", instance: ++built }),
    sandbox: () => ({ face: "sandbox", instance: ++built }),
  });
  assert.equal(clientFor(provider, "live").face, "live");
  assert.equal(clientFor(provider, "test").face, "sandbox");
  // Each face is built once and reused (SDK clients are created once per process).
  assert.equal(clientFor(provider, "live"), clientFor(provider, "live"));
  assert.equal(built, 2);
  assert.ok(definedProviders().some((p) => p.name === provider.name));
});

Deno.test("a provider name is defined once", () => {
  const name = `unit_${crypto.randomUUID()}`;
  const faces = { description: "", live: () => 1, sandbox: () => 2 };
  defineProvider({ name, ...faces });
  assert.throws(() => defineProvider({ name, ...faces }), /defined twice/);
});
