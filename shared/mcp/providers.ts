/**
 * An organization's MCP providers (public.mcp_providers): a name, a Streamable HTTP server
 * URL and credentials sealed with shared/platform/secrets.ts (never answered, never logged).
 * The URL is checked by the private-network guard when saved (400 naming `url`) and again
 * at every request (guardedFetch in client.ts).
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError, invalidField } from "../platform/errors.ts";
import {
  checkOutboundUrl,
  OutboundBlockedError,
  OutboundNetworkError,
} from "../platform/outbound/address-guard.ts";
import { openSecrets, sealSecrets } from "../platform/secrets.ts";
import { isoTimestamp } from "../platform/time.ts";
import type { McpConnection } from "./client.ts";
import type { ConnectInput, provider, ProviderCredentials } from "./schemas.ts";

export interface ProviderRow {
  id: string;
  name: string;
  url: string;
  sealed_credentials: string | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * Throws a VALIDATION_ERROR on `url` when the guard refuses it. Live providers get the
 * organization's data and credentials: https only (loopback aside, where allowed).
 */
async function checkProviderUrl(url: string, environment: Environment) {
  try {
    await checkOutboundUrl(url, { requireHttps: environment === "live" });
  } catch (error) {
    if (error instanceof OutboundBlockedError) {
      throw invalidField(
        "url",
        error.reason,
        error.reason === "https_required"
          ? "The URL must use https: live MCP providers are called only over https."
          : error.message,
      );
    }
    if (error instanceof OutboundNetworkError) {
      throw invalidField("url", "resolvable", error.message);
    }
    throw error;
  }
}

const credentialKinds = (credentials: ProviderCredentials) =>
  (["bearer_token", "headers"] as const).filter((kind) => credentials[kind] !== undefined);

function providerOf(row: ProviderRow, kinds: ("bearer_token" | "headers")[]) {
  return {
    name: row.name,
    url: row.url,
    credentials: kinds,
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
  } satisfies z.input<typeof provider>;
}

/** The kinds of credentials a row holds, without opening them for anything else. */
async function kindsOf(row: ProviderRow) {
  if (!row.sealed_credentials) return [];
  return credentialKinds(await openSecrets<ProviderCredentials>(row.sealed_credentials));
}

/** Connects a provider, or replaces the URL and credentials of the one with that name. */
export async function connectProvider(tx: Tx, environment: Environment, input: ConnectInput) {
  await checkProviderUrl(input.url, environment);
  const kinds = credentialKinds(input.credentials);
  const sealed = kinds.length > 0 ? await sealSecrets(input.credentials) : null;
  const [row] = await tx<ProviderRow[]>`
    insert into public.mcp_providers (name, url, sealed_credentials)
    values (${input.name}, ${input.url}, ${sealed})
    on conflict (org_id, environment, name) do update
      set url = excluded.url, sealed_credentials = excluded.sealed_credentials,
          updated_at = now()
    returning id, name, url, sealed_credentials, created_at, updated_at
  `;
  return providerOf(row, kinds);
}

export async function listProviders(tx: Tx) {
  const rows = await tx<ProviderRow[]>`
    select id, name, url, sealed_credentials, created_at, updated_at
    from public.mcp_providers order by name
  `;
  return {
    providers: await Promise.all(rows.map(async (row) => providerOf(row, await kindsOf(row)))),
  };
}

/** Disconnects (deletes) a provider; its executions stay, by name. */
export async function disconnectProvider(tx: Tx, name: string) {
  const [row] = await tx<{ name: string }[]>`
    delete from public.mcp_providers where name = ${name} returning name
  `;
  if (!row) throw providerNotFound(name);
  return { name: row.name, disconnected: true as const };
}

const providerNotFound = (name: string) =>
  new ApiError(
    "RESOURCE_NOT_FOUND",
    `MCP provider '${name}' is not connected (mcp/providers lists those that are; ` +
      "an admin connects one with mcp/connect).",
    { details: { provider: name } },
  );

/** The provider named `name`, or 404. */
export async function findProvider(tx: Tx, name: string): Promise<ProviderRow> {
  const [row] = await tx<ProviderRow[]>`
    select id, name, url, sealed_credentials, created_at, updated_at
    from public.mcp_providers where name = ${name}
  `;
  if (!row) throw providerNotFound(name);
  return row;
}

/** What the client needs to reach a provider: its credentials opened (only for the call). */
export async function connectionOf(row: Pick<ProviderRow, "name" | "url" | "sealed_credentials">) {
  const credentials = row.sealed_credentials
    ? await openSecrets<ProviderCredentials>(row.sealed_credentials)
    : {};
  return { name: row.name, url: row.url, credentials } satisfies McpConnection;
}
