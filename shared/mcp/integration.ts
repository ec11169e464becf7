/**
 * An MCP server as an integration kind (shared/integrations/kinds.ts): connected through
 * `integrations/connect` with `provider: "mcp"`, a `name` (what `mcp/execute` calls
 * `provider`: `google_sheets`) and the server's Streamable HTTP URL with its credentials.
 * Several at once, each under its own name. The URL is shown and checked by the
 * private-network guard before anything is stored (400 naming `credentials.url`; again at
 * every request, guardedFetch in client.ts); the bearer token and headers are sealed.
 * `test` connects (initialize) and lists the tools through the SDK client.
 */
import type { IntegrationKind } from "../integrations/kinds.ts";
import type { Environment } from "../platform/environment.ts";
import { invalidField } from "../platform/errors.ts";
import {
  checkOutboundUrl,
  OutboundBlockedError,
  OutboundNetworkError,
} from "../platform/outbound/address-guard.ts";
import { clientFor } from "../platform/providers.ts";
import { mcpErrorOf, mcpServers } from "./client.ts";
import {
  type McpIntegrationCredentials,
  mcpIntegrationCredentials,
  type ProviderCredentials,
} from "./schemas.ts";

export interface McpPublic {
  url: string;
}

/**
 * Throws a VALIDATION_ERROR on `credentials.url` when the guard refuses it. Live providers
 * get the organization's data and credentials: https only (loopback aside, where allowed).
 */
async function checkProviderUrl(url: string, environment: Environment) {
  const field = "credentials.url";
  try {
    await checkOutboundUrl(url, { requireHttps: environment === "live" });
  } catch (error) {
    if (error instanceof OutboundBlockedError) {
      throw invalidField(
        field,
        error.reason,
        error.reason === "https_required"
          ? "The URL must use https: live MCP providers are called only over https."
          : error.message,
      );
    }
    if (error instanceof OutboundNetworkError) {
      throw invalidField(field, "resolvable", error.message);
    }
    throw error;
  }
}

export const mcpIntegration: IntegrationKind<McpIntegrationCredentials, McpPublic> = {
  provider: "mcp",
  multiple: true,
  credentials: mcpIntegrationCredentials,
  publicPart: (credentials) => ({ url: credentials.url }),
  // The shape mcp_providers sealed, so servers connected before the fold open alike.
  sealedPart: ({ url: _url, ...secrets }): ProviderCredentials => secrets,
  credentialsFrom: (sealed, shown) => ({
    ...((sealed ?? {}) as ProviderCredentials),
    url: shown.url,
  }),
  check: (credentials, { environment }) => checkProviderUrl(credentials.url, environment),
  async test(credentials, { environment, name, signal }) {
    const { url, ...secrets } = credentials;
    const provider = name ?? "mcp";
    try {
      const session = await clientFor(mcpServers, environment)
        .open({ name: provider, url, credentials: secrets }, signal);
      try {
        const tools = await session.listTools();
        return { url, tools_count: tools.length };
      } finally {
        await session.close();
      }
    } catch (error) {
      throw mcpErrorOf(provider, error).toApiError();
    }
  },
};
