/**
 * Webhook signing secrets and signatures. Pure: no database, no network.
 *
 * Two schemes sign every delivery, with every secret that is currently signing (the newest
 * first; after a rotation the previous one signs beside it for 24 hours):
 *
 * - BiVelio's (the spec): `X-BiVelio-Signature` is the hex HMAC-SHA256 of the raw body,
 *   keyed with the secret string as the spec's Node snippet does
 *   (`createHmac('sha256', secret)`). It always holds exactly one signature, the newest
 *   secret's, so the snippet's `timingSafeEqual` never sees buffers of different lengths;
 *   during a rotation `X-BiVelio-Signature-Previous` holds the previous secret's.
 * - Standard Webhooks: `webhook-id` (the delivery id, the same on every attempt),
 *   `webhook-timestamp` (Unix seconds of the attempt) and `webhook-signature`:
 *   space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per signing
 *   secret. The HMAC key is what `new Webhook(secret)` of the `standardwebhooks` library
 *   uses for a `whsec_<base64>` secret (every generated one): the decoded bytes. A custom
 *   secret that is not `whsec_` + canonical base64 is used as its own bytes, which is
 *   `new Webhook(secret, { format: "raw" })`.
 */
import { createHmac } from "node:crypto";
import { Buffer } from "node:buffer";

const SECRET_PREFIX = "whsec_";
/** Generated secrets: `whsec_` + base64 of this many random bytes. */
const SECRET_BYTES = 32;
/** Padded standard base64, as `Buffer.toString("base64")` writes it. */
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A new signing secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  return SECRET_PREFIX + Buffer.from(bytes).toString("base64");
}

/** The Standard Webhooks HMAC key of a secret (see the module comment). */
export function standardWebhooksKey(secret: string): Uint8Array {
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (secret.startsWith(SECRET_PREFIX) && encoded.length > 0 && CANONICAL_BASE64.test(encoded)) {
    return Buffer.from(encoded, "base64");
  }
  return Buffer.from(secret, "latin1");
}

/** `X-BiVelio-Signature`: hex HMAC-SHA256 of the body with the secret string as key. */
export function biVelioSignature(secret: string, body: string): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

/** One `v1,<base64>` entry of `webhook-signature`. */
export function standardWebhooksSignature(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): string {
  const mac = createHmac("sha256", standardWebhooksKey(secret))
    .update(`${id}.${timestamp}.${body}`)
    .digest("base64");
  return `v1,${mac}`;
}

export interface SignatureInput {
  /** The secrets that sign now, newest first (at least one). */
  secrets: string[];
  /** The delivery id (webhook-id). */
  id: string;
  /** Unix seconds of this attempt. */
  timestamp: number;
  /** The exact body sent. */
  body: string;
}

/** The signature headers of one attempt. */
export function signatureHeaders({ secrets, id, timestamp, body }: SignatureInput) {
  if (secrets.length === 0) throw new Error("A webhook needs a signing secret.");
  const [newest, previous] = secrets;
  return {
    "X-BiVelio-Signature": biVelioSignature(newest, body),
    ...(previous ? { "X-BiVelio-Signature-Previous": biVelioSignature(previous, body) } : {}),
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": secrets.slice(0, 2)
      .map((secret) => standardWebhooksSignature(secret, id, timestamp, body))
      .join(" "),
  };
}
