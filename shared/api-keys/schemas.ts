/**
 * What the api-keys actions answer: the one definition of each response's `data`, from
 * which the mappers take their types, OpenAPI its named schemas and the tests their check.
 * (The input schemas stay in keys.ts, beside the queries that use them.)
 */
import { z } from "zod";
import { ENVIRONMENTS } from "../platform/environment.ts";
import { prefixedId } from "../platform/ids.ts";
import { ALL_SCOPES, type Scope } from "../platform/principal.ts";
import { timestamp } from "../platform/time.ts";

export const keyId = prefixedId("key", "an API key");
export const scope = z.enum(ALL_SCOPES as [Scope, ...Scope[]]);

/** A key as lists show it: never the key, only enough to recognise it. */
const apiKeyFields = {
  id: keyId,
  name: z.string(),
  /** Prefix, first characters and last four: `bv_live_sk_a1b2…wxyz`. */
  display: z.string(),
  environment: z.enum(ENVIRONMENTS),
  type: z.enum(["secret", "publishable"]),
  scopes: z.array(scope),
  status: z.enum(["active", "expired", "revoked"]),
  created_at: timestamp,
  last_used_at: timestamp.nullable(),
  expires_at: timestamp.nullable(),
  revoked_at: timestamp.nullable(),
};
export const apiKey = z.strictObject(apiKeyFields).meta({ id: "ApiKey" });

/** The raw key, in this answer only (create, rotate): shown once, never stored. */
export const createdApiKey = z.strictObject({
  ...apiKeyFields,
  key: z.string().regex(/^bv_(live|test)_(sk|pk)_[0-9A-Za-z]+$/),
}).meta({ id: "CreatedApiKey" });

export const apiKeyList = z.strictObject({ api_keys: z.array(apiKey) }).meta({ id: "ApiKeyList" });

export const apiKeyRotation = z.strictObject({
  api_key: createdApiKey,
  /** The old key, valid until `valid_until` (the grace period's end). */
  previous: z.strictObject({ ...apiKeyFields, valid_until: timestamp.nullable() }),
}).meta({ id: "ApiKeyRotation" });
