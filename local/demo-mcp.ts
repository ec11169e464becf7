/**
 * Connects the demo MCP server (local/stand-ins/mcp-google-sheets.ts) as `google_sheets` for
 * every demo organization, live and sandbox: an `mcp` integration made through the API's own
 * `integrations/connect` (so its bearer token is sealed as any integration's). Run at every
 * start: the server's port and token are new each time, so an existing one is updated.
 */
import { callIntegrations } from "./demo.ts";

export async function connectDemoMcpProviders(
  apiUrl: string,
  orgs: { name: string; keys: { live_secret: string; test_secret: string } }[],
  server: { url: string; bearer_token: string },
) {
  const credentials = { url: server.url, bearer_token: server.bearer_token };
  for (const org of orgs) {
    for (const key of [org.keys.live_secret, org.keys.test_secret]) {
      const { integrations } = await callIntegrations(apiUrl, key, "list", { provider: "mcp" });
      const existing = integrations.find((i: { name: string }) => i.name === "google_sheets");
      try {
        if (existing) {
          await callIntegrations(apiUrl, key, "update", {
            integration_id: existing.id,
            credentials,
          });
        } else {
          await callIntegrations(apiUrl, key, "connect", {
            provider: "mcp",
            name: "google_sheets",
            credentials,
          });
        }
      } catch (error) {
        throw new Error(`Connecting google_sheets for ${org.name} failed: ${error}`);
      }
    }
  }
}
