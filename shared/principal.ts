import type { RequestClaims } from "./db.ts";

export type Scope = "read" | "write" | "admin";
export const ALL_SCOPES: Scope[] = ["read", "write", "admin"];

/** Who is calling: a dashboard user (Supabase Auth JWT) or an API key. */
export interface Principal {
  kind: "user" | "api_key";
  orgId: string;
  environment: "live" | "test";
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

/** admin covers every scope; otherwise the scope must be granted by name. */
export function hasScope(principal: Principal, scope: Scope) {
  return principal.scopes.includes(scope) || principal.scopes.includes("admin");
}

/** Dashboard users' scopes follow their role in the organization. */
export function scopesForRole(role: string | undefined): Scope[] {
  return role === "owner" || role === "admin" ? ["read", "write", "admin"] : ["read", "write"];
}
