/**
 * The receiver route kind: how a provider's request (a WhatsApp webhook, a Telegram update,
 * an inbound email) is taken. Unlike the API's actions it carries no API key and is not
 * JSON `{action, data}`:
 *
 *   GET|POST /receivers/<kind>/<receiver id>
 *
 * The receiver id in the URL finds the organization and environment (a row of
 * `private.receivers`, made by `registerReceiver` when an integration is connected), and
 * the provider's signature over the **raw bytes**, checked with that receiver's own sealed
 * secrets, is the authentication. A POST goes:
 *
 *   raw body (own limit, 413) → receiver by id (404 if unknown, disabled or of another kind)
 *   → open its secrets → authenticate on the raw bytes (401, nothing stored)
 *   → parse into items (400) → one RLS transaction for the receiver's organization and
 *   environment: record each item's provider id, handle only the new ones → 200
 *
 * A provider that delivers the same update twice (even at the same moment) gets it handled
 * once: the provider id's row and what handling wrote commit together, and a concurrent
 * second insert of the same id waits for the first and then does nothing. A handler that
 * fails rolls its dedup row back with it, and the 500 makes the provider retry.
 *
 * A GET is the provider's verification (WhatsApp's `hub.challenge`), answered by the kind's
 * `verify`, whose Response (text, bytes) is sent as it is.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { envelope, newApp } from "./app.ts";
import { config } from "./config.ts";
import { serviceSql, type Tx, withClaims } from "./db.ts";
import { ApiError } from "./errors.ts";
import type { Environment } from "./environment.ts";
import { readCapped } from "./read-capped.ts";
import { openSecrets, sealSecrets } from "./secrets.ts";

/** Provider bodies may carry media or a whole email: more than the API's 1 MiB of JSON. */
export const DEFAULT_RECEIVER_BODY_LIMIT = 5 * 1024 * 1024;
/** The receiver ids `private.new_id('rcv')` makes; anything else is not looked up. */
const RECEIVER_ID = /^rcv_[0-9a-f]{32}$/;
const KIND_NAME = /^[a-z][a-z0-9_-]{0,49}$/;
/** As `private.received_updates.provider_id` allows. */
const MAX_PROVIDER_ID_LENGTH = 1000;

/** The receiver a request reached: whom it acts for. */
export interface Receiver {
  id: string;
  kind: string;
  orgId: string;
  environment: Environment;
}

/** What `verify` sees: no body (a GET). */
export interface VerifyContext<Secrets> {
  receiver: Receiver;
  secrets: Secrets;
  headers: Headers;
  url: URL;
}

/** What `authenticate` sees: the bytes exactly as they arrived, not yet parsed. */
export interface DeliveryContext<Secrets> extends VerifyContext<Secrets> {
  rawBody: Uint8Array;
}

/** One update of a delivery: `providerId` is what a redelivery repeats (the dedup key). */
export interface ReceivedItem<Payload> {
  providerId: string;
  payload: Payload;
}

export interface ReceiverKind<Secrets = unknown, Payload = unknown> {
  /** The URL segment (`whatsapp`), also stored with each receiver. */
  kind: string;
  /** Largest body accepted, in bytes (default DEFAULT_RECEIVER_BODY_LIMIT); 413 beyond. */
  bodyLimit?: number;
  /**
   * Answers the provider's GET verification (e.g. WhatsApp's `hub.challenge` as text/plain
   * when `hub.verify_token` matches). Throw `invalidSignature()` when it does not. Without
   * it, GET is 405.
   */
  verify?(ctx: VerifyContext<Secrets>): Response | Promise<Response>;
  /**
   * Whether the request is the provider's, from the raw bytes and headers, before anything
   * is parsed. Compare with `timingSafeEqualText` (never `===`). False: 401, nothing stored.
   */
  authenticate(ctx: DeliveryContext<Secrets>): boolean | Promise<boolean>;
  /**
   * The updates a body holds (a Telegram update is one; a WhatsApp callback may batch
   * several). Throw `malformedBody(...)` (or a validate() error) for a body that is not the
   * provider's shape: 400. Anything else thrown is a bug: 500, and the provider retries.
   */
  parse(rawBody: Uint8Array, headers: Headers): ReceivedItem<Payload>[];
  /**
   * Handles one new update inside the transaction that acts for the receiver's organization
   * and environment (RLS applies; `emitEvent` writes to its outbox). No external calls here:
   * queue a job for those. A throw rolls the update back and answers 500 (an ApiError:
   * its own status), so the provider delivers it again.
   */
  handle(tx: Tx, item: ReceivedItem<Payload>, receiver: Receiver): Promise<void>;
}

/** Declares a receiver kind, typed by its secrets and payload. */
export const defineReceiverKind = <Secrets, Payload>(
  kind: ReceiverKind<Secrets, Payload>,
): ReceiverKind<Secrets, Payload> => kind;

// ---------------------------------------------------------------------------------------
// Helpers for kinds
// ---------------------------------------------------------------------------------------

/** The 401 of a missing or wrong signature (or verify token). Says nothing more. */
export const invalidSignature = () =>
  new ApiError("AUTH_INVALID_TOKEN", "The request's signature is missing or not valid.");

/** The 400 of a body that is not the provider's shape. */
export const malformedBody = (message: string, details: Record<string, unknown> = {}) =>
  new ApiError("VALIDATION_ERROR", message, {
    details: { field: "body", constraint: "format", ...details },
  });

/**
 * Compares two secrets' worth of text in constant time, whatever their lengths (both are
 * hashed first, so not even the length of the expected value leaks).
 */
export function timingSafeEqualText(given: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Hex HMAC-SHA256 of the raw bytes (WhatsApp's `X-Hub-Signature-256: sha256=<this>`). */
export const hmacSha256Hex = (key: string | Uint8Array, rawBody: Uint8Array) =>
  createHmac("sha256", key).update(rawBody).digest("hex");

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The body as JSON (strict UTF-8), or a 400. */
export function parseJsonBody(rawBody: Uint8Array): unknown {
  try {
    return JSON.parse(strictUtf8.decode(rawBody));
  } catch {
    throw malformedBody("The body is not valid JSON.", { constraint: "json" });
  }
}

// ---------------------------------------------------------------------------------------
// Creating receivers (for the integrations that own them)
// ---------------------------------------------------------------------------------------

/** The public URL a provider is given for a receiver. */
export function receiverUrl(kind: string, id: string): string {
  return `${config.supabaseUrl.replace(/\/+$/, "")}/functions/v1/receivers/${kind}/${id}`;
}

/**
 * Creates a receiver for the organization and environment `tx` acts for (an RLS
 * transaction, e.g. an integration's `connect` action; the action checks the scope), with
 * its secrets sealed. Returns its id and the URL to give the provider.
 */
export async function registerReceiver<Secrets>(
  tx: Tx,
  { kind, secrets }: { kind: ReceiverKind<Secrets, unknown>; secrets: Secrets },
): Promise<{ id: string; url: string }> {
  const sealed = await sealSecrets(secrets);
  const [{ id }] = await tx<{ id: string }[]>`
    select private.register_receiver(${kind.kind}, ${sealed}) as id
  `;
  return { id, url: receiverUrl(kind.kind, id) };
}

/**
 * Replaces a receiver's secrets and/or its status (a disabled receiver answers 404), for a
 * receiver of the organization and environment `tx` acts for. False when there is none.
 */
export async function updateReceiver<Secrets>(
  tx: Tx,
  id: string,
  change: { secrets?: Secrets; status?: "active" | "disabled" },
): Promise<boolean> {
  const sealed = change.secrets === undefined ? null : await sealSecrets(change.secrets);
  const [{ updated }] = await tx<{ updated: boolean }[]>`
    select private.update_receiver(${id}, ${sealed}, ${change.status ?? null}) as updated
  `;
  return updated;
}

// ---------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------

const notFound = (c: Context) =>
  new ApiError("RESOURCE_NOT_FOUND", `No receiver at ${new URL(c.req.url).pathname}.`);

interface StoredReceiver extends Receiver {
  sealedSecrets: string;
}

/**
 * The one service (RLS-bypassing) lookup of this route kind, as API-key authentication is
 * for actions: the request names a receiver, and its row says whom the request acts for.
 * Unknown, disabled and other kinds' receivers are alike: not found.
 */
async function findActiveReceiver(kind: string, id: string): Promise<StoredReceiver | null> {
  if (!RECEIVER_ID.test(id)) return null;
  const [row] = await serviceSql()<
    { id: string; kind: string; org_id: string; environment: Environment; sealed_secrets: string }[]
  >`
    select id, kind, org_id, environment, sealed_secrets from private.receivers
    where id = ${id} and kind = ${kind} and status = 'active'
  `;
  if (!row) return null;
  return {
    id: row.id,
    kind: row.kind,
    orgId: row.org_id,
    environment: row.environment,
    sealedSecrets: row.sealed_secrets,
  };
}

const tooLarge = (limit: number) =>
  new ApiError("PAYLOAD_TOO_LARGE", `The request body exceeds the limit of ${limit} bytes.`, {
    details: { limit_bytes: limit },
  });

/** The body's bytes, refusing more than `limit` (a declared length at once, chunked as read). */
async function readRawBody(request: Request, limit: number): Promise<Uint8Array> {
  if (Number(request.headers.get("content-length")) > limit) throw tooLarge(limit);
  const bytes = await readCapped(request.body, limit);
  if (bytes === null) throw tooLarge(limit);
  return bytes;
}

/** The kind's items, checked: each has a usable provider id. */
function parseItems(kind: ReceiverKind, rawBody: Uint8Array, headers: Headers) {
  const items = kind.parse(rawBody, headers);
  for (const item of items) {
    const id = item.providerId;
    if (
      typeof id !== "string" || id.length === 0 || id.length > MAX_PROVIDER_ID_LENGTH ||
      id.includes("\u0000") || !id.isWellFormed()
    ) {
      throw malformedBody(
        `An update in the body has no usable id (1 to ${MAX_PROVIDER_ID_LENGTH} characters, ` +
          "no NUL, no lone surrogate).",
      );
    }
  }
  return items;
}

/**
 * Records the items' provider ids and handles the new ones, in one transaction acting for
 * the receiver's organization and environment. Returns how many were new.
 */
function handleNewItems(kind: ReceiverKind, receiver: Receiver, items: ReceivedItem<unknown>[]) {
  const claims = {
    role: "authenticated" as const,
    org_id: receiver.orgId,
    environment: receiver.environment,
    receiver_id: receiver.id,
  };
  return withClaims(claims, async (tx) => {
    // Sorted, so two deliveries sharing ids take their row locks in the same order.
    const ids = [...new Set(items.map((item) => item.providerId))].sort();
    const inserted = await tx<{ provider_id: string }[]>`
      insert into private.received_updates (receiver_id, provider_id)
      select ${receiver.id}, p from unnest(${ids}::text[]) with ordinality as u (p, n)
      order by n
      on conflict do nothing
      returning provider_id
    `;
    const fresh = new Set(inserted.map((row) => row.provider_id));
    let handled = 0;
    for (const item of items) {
      // delete: an id repeated within one body is handled once too.
      if (!fresh.delete(item.providerId)) continue;
      await kind.handle(tx, item, receiver);
      handled++;
    }
    return handled;
  });
}

/**
 * The app of the `receivers` function: `GET|POST /receivers/<kind>/<receiver id>` for the
 * kinds given. Request id, CORS and the error envelope as every function; no API key and
 * no API rate limit (the provider's signature authenticates, the receiver names the
 * organization).
 */
export function createReceiverApp(kinds: ReceiverKind[]) {
  const byName = new Map<string, ReceiverKind>();
  for (const kind of kinds) {
    if (!KIND_NAME.test(kind.kind)) throw new Error(`Receiver kind '${kind.kind}': bad name.`);
    if (byName.has(kind.kind)) throw new Error(`Receiver kind '${kind.kind}' is given twice.`);
    byName.set(kind.kind, kind);
  }
  const app = newApp("/receivers");

  /** The kind and receiver a request names, or 404. */
  const target = async (c: Context) => {
    const kind = byName.get(c.req.param("kind") ?? "");
    const receiver = kind && await findActiveReceiver(kind.kind, c.req.param("id") ?? "");
    if (!kind || !receiver) throw notFound(c);
    const { sealedSecrets, ...rest } = receiver;
    return { kind, receiver: rest, secrets: await openSecrets(sealedSecrets) };
  };

  app.get("/:kind/:id", async (c) => {
    const kind = byName.get(c.req.param("kind"));
    if (kind && !kind.verify) {
      throw new ApiError("METHOD_NOT_ALLOWED", "This receiver takes POST only.", {
        headers: { Allow: "POST, OPTIONS" },
      });
    }
    const { receiver, secrets } = await target(c);
    const response = await kind!.verify!({
      receiver,
      secrets,
      headers: c.req.raw.headers,
      url: new URL(c.req.url),
    });
    // c.body keeps the headers prepared so far (request id, CORS).
    const status = response.status as never;
    const headers = Object.fromEntries(response.headers);
    return response.body ? c.body(response.body, status, headers) : c.body(null, status, headers);
  });

  app.post("/:kind/:id", async (c) => {
    const named = byName.get(c.req.param("kind"));
    const rawBody = await readRawBody(
      c.req.raw,
      named?.bodyLimit ?? DEFAULT_RECEIVER_BODY_LIMIT,
    );
    const { kind, receiver, secrets } = await target(c);
    const headers = c.req.raw.headers;
    const url = new URL(c.req.url);
    if (!(await kind.authenticate({ receiver, secrets, rawBody, headers, url }))) {
      throw invalidSignature();
    }
    const items = parseItems(kind, rawBody, headers);
    const handled = items.length ? await handleNewItems(kind, receiver, items) : 0;
    return c.json(
      envelope({ updates: items.length, handled, duplicates: items.length - handled }),
      200,
    );
  });

  app.all("*", (c) => {
    if (c.req.method === "GET" || c.req.method === "POST") throw notFound(c);
    throw new ApiError("METHOD_NOT_ALLOWED", `Use POST (or GET to verify); got ${c.req.method}.`, {
      headers: { Allow: "GET, POST, OPTIONS" },
    });
  });
  return app;
}
