/**
 * Connects the demo MCP server (local/stand-ins/mcp-google-sheets.ts) as `google_sheets` for
 * every demo organization, live and sandbox, through the API's own `mcp/connect` (so its
 * bearer token is sealed as any provider's). Run at every start: the server's port and token
 * are new each time.
 */
export async function connectDemoMcpProviders(
  apiUrl: string,
  orgs: { name: string; keys: { live_secret: string; test_secret: string } }[],
  server: { url: string; bearer_token: string },
) {
  for (const org of orgs) {
    for (const key of [org.keys.live_secret, org.keys.test_secret]) {
      const response = await fetch(`${apiUrl}/v1/mcp/connect`, {
        method: "POST",
        headers: { "x-api-key": key, "content-type": "application/json" },
        body: JSON.stringify({
          action: "connect",
          data: {
            name: "google_sheets",
            url: server.url,
            credentials: { bearer_token: server.bearer_token },
          },
        }),
      });
      const body = await response.text();
      if (!response.ok) {
        throw new Error(`Connecting google_sheets for ${org.name} failed: ${body.slice(0, 300)}`);
      }
    }
  }
}
