/**
 * An organization's MCP providers: its `mcp` integrations (public.integrations, connected
 * through integrations/connect with a `name`, the server's URL and credentials; see
 * integration.ts). The name is what `execute` calls `provider`; the URL is shown, the
 * credentials are sealed with shared/platform/secrets.ts (never answered, never logged) and
 * opened only for a call.
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";
import { openSecrets } from "../platform/secrets.ts";
import { isoTimestamp } from "../platform/time.ts";
import type { McpConnection } from "./client.ts";
import type { provider, ProviderCredentials } from "./schemas.ts";

export interface ProviderRow {
  /** The integration's id. */
  id: string;
  name: string;
  url: string;
  /** {bearer_token?, headers?}, sealed; null for a server connected without any. */
  sealed_credentials: string | null;
  created_at: Date;
  updated_at: Date;
}

/** The connected (or broken) `mcp` integrations, as providers. */
const providerRows = (tx: Tx, name: string | null) =>
  tx<ProviderRow[]>`
    select id, name, public ->> 'url' as url, sealed_credentials, created_at, updated_at
    from public.integrations
    where provider = 'mcp' and status <> 'disconnected'
      and (${name}::text is null or name = ${name})
    order by name
  `;

/** Which kinds of credentials a provider has (`bearer_token`, `headers`). */
export const credentialKinds = (credentials: ProviderCredentials) =>
  (["bearer_token", "headers"] as const).filter((kind) => credentials[kind] !== undefined);

async function providerOf(row: ProviderRow) {
  const credentials = row.sealed_credentials
    ? await openSecrets<ProviderCredentials>(row.sealed_credentials)
    : {};
  return {
    name: row.name,
    url: row.url,
    credentials: credentialKinds(credentials),
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
  } satisfies z.input<typeof provider>;
}

export async function listProviders(tx: Tx) {
  return { providers: await Promise.all((await providerRows(tx, null)).map(providerOf)) };
}

const providerNotFound = (name: string) =>
  new ApiError(
    "RESOURCE_NOT_FOUND",
    `MCP provider '${name}' is not connected (mcp/providers lists those that are; an ` +
      `admin connects one with integrations/connect, provider 'mcp' and name '${name}').`,
    { details: { provider: name } },
  );

/** The provider named `name`, or 404. */
export async function findProvider(tx: Tx, name: string): Promise<ProviderRow> {
  const [row] = await providerRows(tx, name);
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
