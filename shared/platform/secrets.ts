/**
 * Sealed secrets: provider credentials (an app secret, a bot token, an SMTP password) as
 * they are stored in the database, encrypted with a key only the functions hold, so a copy
 * of the database (a backup, a dashboard, a leaked dump) does not hold them in clear.
 *
 * AES-256-GCM (WebCrypto): encrypted and authenticated, so an altered value or one sealed
 * with another key is refused rather than opened into garbage. The key is
 * BIVELIO_SECRETS_KEY, the base64 of 32 random bytes (`openssl rand -base64 32`).
 *
 * Format: `v1.<iv>.<ciphertext with its tag>`, base64url. The version names the key, so a
 * rotation can add `v2` (a new key) and keep opening `v1` values until they are re-sealed.
 *
 * Opened secrets are for the code that uses them: never in a response, never in a log
 * (the errors here name no value and no key).
 */
import { Buffer } from "node:buffer";
import { config } from "./config.ts";

const VERSION = "v1";
const KEY_BYTES = 32;
/** 96-bit IVs, random per value: the size GCM is designed for. */
const IV_BYTES = 12;
/** Bound into every value's tag: a v1 secret cannot be passed off as anything else. */
const ADDITIONAL_DATA = new TextEncoder().encode("bivelio-sealed-secrets-v1");

/** Opening failed: a missing or malformed key, a value sealed with another key, or tampering. */
export class SealedSecretsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SealedSecretsError";
  }
}

/** The imported key, per key value (tests change the environment between cases). */
let cached: { raw: string; key: Promise<CryptoKey> } | undefined;

function secretsKey(): Promise<CryptoKey> {
  let raw: string;
  try {
    raw = config.secretsKey;
  } catch {
    throw new SealedSecretsError(
      "BIVELIO_SECRETS_KEY is not set: provider credentials cannot be sealed or opened. " +
        "Set it to the base64 of 32 random bytes (openssl rand -base64 32).",
    );
  }
  if (cached?.raw === raw) return cached.key;
  const bytes = Buffer.from(raw.trim(), "base64");
  if (bytes.length !== KEY_BYTES || bytes.toString("base64") !== raw.trim()) {
    throw new SealedSecretsError(
      "BIVELIO_SECRETS_KEY must be the base64 of exactly 32 random bytes " +
        "(openssl rand -base64 32).",
    );
  }
  const key = crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]);
  cached = { raw, key };
  return key;
}

const encode = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");

/** Encrypts `value` (as JSON) into a sealed string for the database. */
export async function sealSecrets(value: unknown): Promise<string> {
  const key = await secretsKey();
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const plaintext = new TextEncoder().encode(JSON.stringify(value));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: ADDITIONAL_DATA },
    key,
    plaintext,
  );
  return `${VERSION}.${encode(iv)}.${encode(new Uint8Array(ciphertext))}`;
}

/** Decrypts what `sealSecrets` made. Throws SealedSecretsError on anything else. */
export async function openSecrets<T>(sealed: string): Promise<T> {
  const [version, iv, ciphertext, ...rest] = sealed.split(".");
  if (version !== VERSION || !iv || !ciphertext || rest.length > 0) {
    throw new SealedSecretsError(
      `Not a sealed secrets value of version ${VERSION}; it cannot be opened.`,
    );
  }
  const key = await secretsKey();
  let plaintext: ArrayBuffer;
  try {
    plaintext = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: Buffer.from(iv, "base64url"), additionalData: ADDITIONAL_DATA },
      key,
      Buffer.from(ciphertext, "base64url"),
    );
  } catch {
    throw new SealedSecretsError(
      "The sealed secrets could not be opened: they were sealed with another " +
        "BIVELIO_SECRETS_KEY or have been altered.",
    );
  }
  return JSON.parse(new TextDecoder().decode(plaintext)) as T;
}
