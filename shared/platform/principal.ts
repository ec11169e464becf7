import type { Environment } from "./environment.ts";
import type { RequestClaims } from "./db.ts";

/** How much a scope allows; each level includes the ones below it (admin ⊇ write ⊇ read). */
export const SCOPE_LEVELS = ["read", "write", "admin"] as const;
export type ScopeLevel = typeof SCOPE_LEVELS[number];

/**
 * The endpoint groups an API key can be limited to (`contacts:read`). createGroupApp refuses
 * to build a group whose actions API keys may call unless it is listed here, so the list
 * cannot fall behind the groups that exist.
 */
export const SCOPE_GROUPS = [
  "contacts",
  "cases",
  "workflows",
  "webhooks",
  "credits",
  "agents",
  "forms",
  "documents",
  "calendar",
  "invoices",
  "integrations",
  "messages",
  "mcp",
] as const;
export type ScopeGroup = typeof SCOPE_GROUPS[number];

/**
 * A broad scope (`read`: that level in every group, the spec's form) or one group's
 * (`contacts:read`).
 */
export type Scope = ScopeLevel | `${ScopeGroup}:${ScopeLevel}`;
export const ALL_SCOPES: Scope[] = [
  ...SCOPE_LEVELS,
  ...SCOPE_GROUPS.flatMap((group) => SCOPE_LEVELS.map((level) => `${group}:${level}` as const)),
];

/** What an action needs: a level in its group. `group` null: only a broad scope will do. */
export interface RequiredScope {
  group: string | null;
  level: ScopeLevel;
}

/** Who is calling: a dashboard user (Supabase Auth JWT) or an API key. */
export interface Principal {
  kind: "user" | "api_key";
  orgId: string;
  environment: Environment;
  /** As granted: a user's follow its role, a key's are the ones it was created with. */
  scopes: Scope[];
  /** Users: their id, email and org role. */
  userId?: string;
  email?: string;
  orgRole?: "owner" | "admin" | "member";
  /** API keys: their id, name and type. */
  keyId?: string;
  keyName?: string;
  keyType?: "secret" | "publishable";
  /** What row-level security sees through auth.jwt() for this caller. */
  claims: RequestClaims;
}

const rank = (level: ScopeLevel) => SCOPE_LEVELS.indexOf(level);

/** `contacts:read` → {group: "contacts", level: "read"}; `read` → {group: null, level}. */
function parseScope(scope: string): RequiredScope {
  const colon = scope.indexOf(":");
  return colon < 0
    ? { group: null, level: scope as ScopeLevel }
    : { group: scope.slice(0, colon), level: scope.slice(colon + 1) as ScopeLevel };
}

/** The level of a scope: what a publishable key is limited to is `read`. */
export const levelOf = (scope: Scope): ScopeLevel => parseScope(scope).level;

/** The scope's name as a key would hold it: `contacts:read`, or `read` for broad ones. */
export const scopeName = (required: RequiredScope) =>
  required.group === null ? required.level : `${required.group}:${required.level}`;

/** A granted scope allows the required one at its level or below, in its group or (broad) any. */
function allows(granted: Scope, required: RequiredScope) {
  const scope = parseScope(granted);
  return (scope.group === null || scope.group === required.group) &&
    rank(scope.level) >= rank(required.level);
}

export function hasScope(principal: Principal, required: RequiredScope) {
  return principal.scopes.some((granted) => allows(granted, required));
}

/**
 * Every scope that allows `required`, the least first: `contacts:read`, `read`,
 * `contacts:write`, `write`, `contacts:admin`, `admin`.
 */
export function acceptedScopes(required: RequiredScope): string[] {
  return SCOPE_LEVELS.slice(rank(required.level)).flatMap((level) =>
    required.group === null ? [level] : [`${required.group}:${level}`, level]
  );
}

/** Dashboard users' scopes follow their role in the organization. */
export function scopesForRole(role: string | undefined): Scope[] {
  return role === "owner" || role === "admin" ? ["read", "write", "admin"] : ["read", "write"];
}
