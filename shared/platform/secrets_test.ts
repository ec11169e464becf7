import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { openSecrets, SealedSecretsError, sealSecrets } from "./secrets.ts";

const newKey = () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64");

/** Runs `fn` with BIVELIO_SECRETS_KEY set to `key` (or unset), then restores it. */
async function withKey(key: string | undefined, fn: () => Promise<void>) {
  const saved = Deno.env.get("BIVELIO_SECRETS_KEY");
  if (key === undefined) Deno.env.delete("BIVELIO_SECRETS_KEY");
  else Deno.env.set("BIVELIO_SECRETS_KEY", key);
  try {
    await fn();
  } finally {
    if (saved === undefined) Deno.env.delete("BIVELIO_SECRETS_KEY");
    else Deno.env.set("BIVELIO_SECRETS_KEY", saved);
  }
}

const credentials = { app_secret: "s3cr3t-ñ-✓", verify_token: "tok", nested: { n: 1 } };

Deno.test("sealed secrets open to the same value, and never hold it in clear", async () => {
  await withKey(newKey(), async () => {
    const sealed = await sealSecrets(credentials);
    assert.match(sealed, /^v1\.[\w-]+\.[\w-]+$/);
    assert.ok(!sealed.includes("s3cr3t") && !sealed.includes(btoa("s3cr3t")));
    assert.deepEqual(await openSecrets(sealed), credentials);
    // A fresh IV per value: sealing twice gives two different strings.
    assert.notEqual(await sealSecrets(credentials), sealed);
  });
});

Deno.test("an altered sealed value is refused, not opened into something else", async () => {
  await withKey(newKey(), async () => {
    const sealed = await sealSecrets(credentials);
    const [version, iv, ciphertext] = sealed.split(".");
    const bytes = Buffer.from(ciphertext, "base64url");
    for (const index of [0, bytes.length - 1]) {
      const flipped = Buffer.from(bytes);
      flipped[index] ^= 1;
      await assert.rejects(
        openSecrets(`${version}.${iv}.${flipped.toString("base64url")}`),
        (error) => error instanceof SealedSecretsError && /altered/.test(error.message),
      );
    }
    const otherIv = Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("base64url");
    await assert.rejects(openSecrets(`${version}.${otherIv}.${ciphertext}`), SealedSecretsError);
    for (const malformed of ["", "v1", `v2.${iv}.${ciphertext}`, `${sealed}.x`, "v1..x"]) {
      await assert.rejects(openSecrets(malformed), /Not a sealed secrets value/);
    }
  });
});

Deno.test("a value sealed with another key is refused", async () => {
  let sealed = "";
  await withKey(newKey(), async () => {
    sealed = await sealSecrets(credentials);
  });
  await withKey(newKey(), async () => {
    await assert.rejects(
      openSecrets(sealed),
      (error) => error instanceof SealedSecretsError && /another/.test(error.message),
    );
  });
});

Deno.test("no key, or a key that is not 32 bytes of base64: a clear error naming the variable", async () => {
  await withKey(undefined, async () => {
    await assert.rejects(sealSecrets(credentials), /BIVELIO_SECRETS_KEY is not set/);
    await assert.rejects(openSecrets("v1.aaaa.bbbb"), /BIVELIO_SECRETS_KEY is not set/);
  });
  const short = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  for (const bad of [short, "not base64 at all!", `${newKey()}x`]) {
    await withKey(bad, async () => {
      await assert.rejects(
        sealSecrets(credentials),
        (error) =>
          error instanceof SealedSecretsError && /exactly 32 random bytes/.test(error.message) &&
          !error.message.includes(bad),
      );
    });
  }
});
