import type { Context } from "hono";
import { canonicalJson } from "../canonical-json.ts";
import { sha256Hex } from "../hash.ts";
import { serviceSql, type Tx } from "../db.ts";
import { ApiError } from "../errors.ts";
import type { Principal } from "../principal.ts";

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** What identifies "the same request" for an Idempotency-Key: endpoint, action and data. */
export function idempotencyRequestHash(
  request: { group: string; action: string; data: unknown },
) {
  return sha256Hex(canonicalJson(request));
}

/** A claimed Idempotency-Key: the handler's transaction completes it, a failure releases it. */
export interface IdempotencyClaim {
  complete(tx: Tx, status: number, body: unknown): Promise<void>;
  release(): Promise<void>;
}

export type IdempotencyOutcome =
  | { kind: "none" }
  | { kind: "claimed"; claim: IdempotencyClaim }
  | { kind: "replay"; status: number; body: unknown };

/**
 * Applies `Idempotency-Key` to a write: a new key is claimed for this request; the same key
 * with the same request within 24 h replays the stored response; with another request it
 * is 422; while the first is still running it is 409.
 */
export async function claimIdempotencyKey(
  c: Context,
  principal: Principal,
  request: { group: string; action: string; data: unknown },
): Promise<IdempotencyOutcome> {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return { kind: "none" };
  if (!KEY_PATTERN.test(key)) {
    throw new ApiError(
      "VALIDATION_ERROR",
      "The Idempotency-Key header must be 1-255 visible ASCII characters.",
      {
        details: { field: "Idempotency-Key", constraint: "format" },
      },
    );
  }
  const { orgId, environment } = principal;
  const hash = idempotencyRequestHash(request);
  const [row] = await serviceSql()<
    { outcome: string; response_status: number; response_body: unknown }[]
  >`
    select * from private.claim_idempotency_key(${orgId}, ${environment}, ${key}, ${hash})
  `;
  switch (row.outcome) {
    case "replay":
      return { kind: "replay", status: row.response_status, body: row.response_body };
    case "mismatch":
      throw new ApiError(
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was already used with a different request.",
        { details: { field: "Idempotency-Key", constraint: "same_request" } },
      );
    case "in_flight":
      throw new ApiError(
        "IDEMPOTENCY_KEY_IN_USE",
        "A request with this Idempotency-Key is still being processed. Retry later.",
      );
  }
  return {
    kind: "claimed",
    claim: {
      // Inside the handler's transaction: the stored response commits with the change.
      async complete(tx, status, body) {
        await tx`
          update private.idempotency_keys
          set response_status = ${status}, response_body = ${tx.json(body as never)}
          where org_id = ${orgId} and environment = ${environment} and idempotency_key = ${key}
        `;
      },
      // A failed request leaves nothing behind, so the client may retry with the same key.
      async release() {
        await serviceSql()`
          delete from private.idempotency_keys
          where org_id = ${orgId} and environment = ${environment} and idempotency_key = ${key}
            and response_status is null
        `;
      },
    },
  };
}
