/**
 * API key management: minting (raw key returned once, only its hash stored), listing,
 * rotation with an optional grace period, and revocation.
 */
import { z } from "zod";
import { type Environment, ENVIRONMENTS } from "../platform/environment.ts";
import { generateApiKey, hashApiKey, type KeyType } from "./format.ts";
import type { Sql, Tx } from "../platform/db.ts";
import { ApiError, invalidField, notFound } from "../platform/errors.ts";
import { ALL_SCOPES, levelOf, type Scope } from "../platform/principal.ts";
import { isoTimestamp } from "../platform/time.ts";
import { apiKey, apiKeyList, apiKeyRotation, createdApiKey, keyId } from "./schemas.ts";

export const MAX_ROTATION_GRACE_SECONDS = 24 * 60 * 60;
/**
 * Broad (`read`, `write`, `admin`) or one group's (`contacts:read`, `webhooks:admin`); an
 * unknown group or level is a 400 naming `scopes.N`.
 */
const scopesInput = z.array(z.enum(ALL_SCOPES as [Scope, ...Scope[]]))
  .min(1).max(ALL_SCOPES.length);

export const createKeyInput = z.strictObject({
  name: z.string().trim().min(1).max(100),
  environment: z.enum(ENVIRONMENTS).default("live"),
  type: z.enum(["secret", "publishable"]).default("secret"),
  scopes: scopesInput.optional(),
  expires_at: z.iso.datetime({ offset: true }).optional(),
}).superRefine((input, ctx) => {
  if (input.type === "publishable" && input.environment === "test") {
    ctx.addIssue({
      code: "custom",
      path: ["type"],
      message: "publishable keys exist for live only",
    });
  }
  if (input.expires_at && Date.parse(input.expires_at) <= Date.now()) {
    ctx.addIssue({ code: "custom", path: ["expires_at"], message: "must be in the future" });
  }
});
export const listKeysInput = z.strictObject({ include_revoked: z.boolean().default(false) });
export const rotateKeyInput = z.strictObject({
  id: keyId,
  grace_period_seconds: z.number().int().min(0).max(MAX_ROTATION_GRACE_SECONDS).default(0),
  /** The replacement's scopes; the old key's when absent. */
  scopes: scopesInput.optional(),
});
export const revokeKeyInput = z.strictObject({ id: keyId });

interface KeyRow {
  id: string;
  name: string;
  environment: Environment;
  key_type: KeyType;
  scopes: Scope[];
  prefix: string;
  start: string;
  last_four: string;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  replaced_by: string | null;
}

const keyColumns = (db: Sql) =>
  db`id, name, environment, key_type, scopes, prefix, start, last_four, created_at,
     last_used_at, expires_at, revoked_at, replaced_by`;

function statusOf(row: KeyRow) {
  const now = Date.now();
  if (row.revoked_at && row.revoked_at.getTime() <= now) return "revoked";
  if (row.expires_at && row.expires_at.getTime() <= now) return "expired";
  return "active";
}

/** What lists show: never the key, only enough to recognise it. */
export function keyToApi(row: KeyRow): z.input<typeof apiKey> {
  return {
    id: row.id,
    name: row.name,
    display: `${row.prefix}${row.start}…${row.last_four}`,
    environment: row.environment,
    type: row.key_type,
    scopes: row.scopes,
    status: statusOf(row),
    created_at: isoTimestamp(row.created_at),
    last_used_at: isoTimestamp(row.last_used_at),
    expires_at: isoTimestamp(row.expires_at),
    revoked_at: isoTimestamp(row.revoked_at),
  };
}

export interface MintKey {
  name: string;
  environment: Environment;
  type: KeyType;
  scopes?: Scope[];
  expires_at?: string | null;
}

/**
 * Creates a key and returns it with the raw value, the only time it is ever visible.
 * With an RLS transaction the organization comes from the caller's claims; the local
 * stack's service connection names it with `orgId`.
 */
export async function mintApiKey(
  db: Sql,
  input: MintKey,
  orgId?: string,
): Promise<z.input<typeof createdApiKey>> {
  const requested = input.scopes ?? (input.type === "publishable" ? ["read"] : ["read", "write"]);
  if (input.type === "publishable") requireReadOnly(requested);
  const scopes = [...new Set(requested)];
  const generated = generateApiKey(input.environment, input.type);
  const values = {
    ...(orgId ? { org_id: orgId } : {}),
    name: input.name,
    environment: input.environment,
    key_type: input.type,
    scopes,
    key_hash: hashApiKey(generated.key),
    prefix: generated.prefix,
    start: generated.start,
    last_four: generated.lastFour,
    expires_at: input.expires_at ?? null,
  };
  const [row] = await db<KeyRow[]>`
    insert into public.api_keys ${db(values)} returning ${keyColumns(db)}
  `;
  return { ...keyToApi(row), key: generated.key };
}

/**
 * A publishable key ends up in browsers, where anyone can copy it: it may hold read scopes
 * only. Refused rather than cut down, so nobody believes a key writes when it cannot.
 */
function requireReadOnly(scopes: Scope[]) {
  const index = scopes.findIndex((scope) => levelOf(scope) !== "read");
  if (index >= 0) {
    throw invalidField(
      `scopes.${index}`,
      "read_only",
      `Publishable keys may hold only read scopes ('read', 'contacts:read', …), not '${
        scopes[index]
      }'.`,
    );
  }
}

/** Key management is for owners and admins; RLS enforces it, this says it clearly. */
export async function requireOrgAdmin(tx: Tx) {
  const [{ is_admin }] = await tx<
    { is_admin: boolean }[]
  >`select private.is_org_admin() as is_admin`;
  if (!is_admin) {
    throw new ApiError(
      "AUTH_INSUFFICIENT_SCOPE",
      "Only owners and admins of the organization can manage API keys.",
    );
  }
}

export async function listApiKeys(
  tx: Tx,
  includeRevoked: boolean,
): Promise<z.input<typeof apiKeyList>> {
  const rows = await tx<KeyRow[]>`
    select ${keyColumns(tx)} from public.api_keys
    where ${includeRevoked ? tx`true` : tx`(revoked_at is null or revoked_at > now())`}
    order by created_at desc, id desc
  `;
  return { api_keys: rows.map(keyToApi) };
}

async function activeKey(tx: Tx, id: string) {
  const [row] = await tx<KeyRow[]>`select ${
    keyColumns(tx)
  } from public.api_keys where id = ${id} for update`;
  if (!row) throw notFound("API key", id);
  if (statusOf(row) !== "active") {
    throw invalidField("id", "active", `API key '${id}' is ${statusOf(row)}.`);
  }
  return row;
}

/**
 * Issues a replacement with the same name, type, environment and scopes (or `scopes`, when
 * given). The old key stays valid for `graceSeconds` (0: revoked at once) so deployments
 * can switch over.
 */
export async function rotateApiKey(
  tx: Tx,
  { id, grace_period_seconds: graceSeconds, scopes }: z.output<typeof rotateKeyInput>,
): Promise<z.input<typeof apiKeyRotation>> {
  const old = await activeKey(tx, id);
  // A key in its grace period already has a replacement; a second one would leave two.
  if (old.replaced_by) {
    throw invalidField(
      "id",
      "not_rotated",
      `API key '${id}' was already rotated: rotate its replacement '${old.replaced_by}' instead.`,
    );
  }
  const replacement = await mintApiKey(tx, {
    name: old.name,
    environment: old.environment,
    type: old.key_type,
    scopes: scopes ?? old.scopes,
    expires_at: old.expires_at?.toISOString() ?? null,
  });
  const [updated] = await tx<KeyRow[]>`
    update public.api_keys set
      replaced_by = ${replacement.id},
      revoked_at = case when ${graceSeconds} = 0 then now() else revoked_at end,
      expires_at = case when ${graceSeconds} = 0 then expires_at
        else least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => ${graceSeconds})) end
    where id = ${id}
    returning ${keyColumns(tx)}
  `;
  return {
    api_key: replacement,
    previous: {
      ...keyToApi(updated),
      valid_until: isoTimestamp(updated.revoked_at ?? updated.expires_at),
    },
  };
}

export async function revokeApiKey(tx: Tx, id: string): Promise<z.input<typeof apiKey>> {
  await activeKey(tx, id);
  const [row] = await tx<KeyRow[]>`
    update public.api_keys set revoked_at = now() where id = ${id} returning ${keyColumns(tx)}
  `;
  return keyToApi(row);
}
