import { createGroupApp, defineAction } from "../platform/app.ts";
import {
  disconnectIntegration,
  finishSetup,
  finishTest,
  getIntegration,
  listIntegrations,
  runSetup,
  runTest,
  startConnect,
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

const sandbox = (environment: string) => environment === "test";

/**
 * POST /v1/integrations[/<action>]: the channels an organization connects (settings/
 * integrations). Admin scope: credentials go in here.
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
    summary: "Connect a channel: credentials sealed, a receiver for inbound traffic, the " +
      "provider set up (Telegram's webhook); a provider refusal leaves it broken (502)",
    scope: "admin",
    mutates: true,
    // Email's answer holds the inbound signing secret, shown once: never stored for replay.
    replayable: false,
    input: connectInput,
    output: integration,
    handler: ({ tx, data, principal }) => startConnect(tx, data, sandbox(principal.environment)),
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
    handler: ({ tx, data, principal }) => startUpdate(tx, data, sandbox(principal.environment)),
    call: (prepared, { signal }) => runSetup(prepared, signal),
    record: (outcome, { tx, prepared }) => finishSetup(tx, prepared, outcome),
  }),
  defineAction({
    name: "disconnect",
    summary: "Disconnect: its receiver stops answering; its messages are kept",
    scope: "admin",
    mutates: true,
    input: byIntegrationId,
    output: integration,
    handler: ({ tx, data }) => disconnectIntegration(tx, data.integration_id),
  }),
  defineAction({
    name: "test",
    summary: "Prove the credentials with a real call to the provider (sandbox: simulated)",
    scope: "admin",
    mutates: true,
    input: byIntegrationId,
    output: testedIntegration,
    handler: ({ tx, data, principal }) =>
      startTest(tx, data.integration_id, sandbox(principal.environment)),
    call: (prepared, { signal }) => runTest(prepared, signal),
    record: (outcome, { tx, prepared }) => finishTest(tx, prepared, outcome),
  }),
];

export default createGroupApp("integrations", actions);
