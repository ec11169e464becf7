import { createGroupApp, defineAction } from "../platform/app.ts";
import {
  finishDisconnect,
  finishSetup,
  finishTest,
  getIntegration,
  listIntegrations,
  runSetup,
  runTeardown,
  runTest,
  startConnect,
  startDisconnect,
  startTest,
  startUpdate,
} from "./integrations.ts";
import {
  byIntegrationId,
  connectInput,
  integration,
  integrationList,
  listIntegrationsInput,
  testedIntegration,
  updateInput,
} from "./schemas.ts";

/**
 * POST /v1/integrations[/<action>]: every service an organization connects (settings/
 * integrations): WhatsApp, Telegram, email, Google Calendar and MCP servers (kinds.ts).
 * Admin scope: credentials go in here.
 */
export const actions = [
  defineAction({
    name: "list",
    summary: "List the connected integrations (public parts and inbound URLs, never credentials)",
    scope: "admin",
    mutates: false,
    input: listIntegrationsInput,
    output: integrationList,
    handler: ({ tx, data }) => listIntegrations(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get an integration",
    scope: "admin",
    mutates: false,
    input: byIntegrationId,
    output: integration,
    handler: ({ tx, data }) => getIntegration(tx, data.integration_id),
  }),
  defineAction({
    name: "connect",
    summary: "Connect a provider (whatsapp, telegram, email, google_calendar, or an mcp " +
      "server by name): credentials sealed, a receiver for inbound traffic, the provider " +
      "set up or the grant proved (Telegram's webhook, Google's token); a provider refusal " +
      "leaves it broken (502)",
    scope: "admin",
    mutates: true,
    // Secrets shown once (email's signing secret, WhatsApp's verify token): no replay.
    replayable: false,
    input: connectInput,
    output: integration,
    handler: ({ tx, data, principal }) => startConnect(tx, data, principal.environment),
    call: (prepared, { signal }) => runSetup(prepared, signal),
    record: (outcome, { tx, prepared }) => finishSetup(tx, prepared, outcome),
  }),
  defineAction({
    name: "update",
    summary: "Replace an integration's credentials (re-sealed; the provider set up again)",
    scope: "admin",
    mutates: true,
    replayable: false,
    input: updateInput,
    output: integration,
    handler: ({ tx, data, principal }) => startUpdate(tx, data, principal.environment),
    call: (prepared, { signal }) => runSetup(prepared, signal),
    record: (outcome, { tx, prepared }) => finishSetup(tx, prepared, outcome),
  }),
  defineAction({
    name: "disconnect",
    summary: "Disconnect: its receiver stops answering, the provider is told to stop " +
      "(Telegram's deleteWebhook; a refusal is kept in `error`); its messages are kept",
    scope: "admin",
    mutates: true,
    input: byIntegrationId,
    output: integration,
    handler: ({ tx, data, principal }) =>
      startDisconnect(tx, data.integration_id, principal.environment),
    call: (prepared, { signal }) => runTeardown(prepared, signal),
    record: (outcome, { tx, prepared }) => finishDisconnect(tx, prepared, outcome),
  }),
  defineAction({
    name: "test",
    summary: "Prove the credentials with a real call to the provider (sandbox: simulated)",
    scope: "admin",
    mutates: true,
    input: byIntegrationId,
    output: testedIntegration,
    handler: ({ tx, data, principal }) => startTest(tx, data.integration_id, principal.environment),
    call: (prepared, { signal }) => runTest(prepared, signal),
    record: (outcome, { tx, prepared }) => finishTest(tx, prepared, outcome),
  }),
];

export default createGroupApp("integrations", actions);
