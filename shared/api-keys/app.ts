import { createGroupApp, defineAction } from "../platform/app.ts";
import {
  createKeyInput,
  listApiKeys,
  listKeysInput,
  mintApiKey,
  requireOrgAdmin,
  revokeApiKey,
  revokeKeyInput,
  rotateApiKey,
  rotateKeyInput,
} from "./keys.ts";
import { apiKey, apiKeyList, apiKeyRotation, createdApiKey } from "./schemas.ts";

/**
 * POST /v1/api-keys[/<action>]: key management. Only a signed-in owner or admin (user
 * JWT) may call it, so a leaked key can never mint or rotate keys.
 */
export const actions = [
  defineAction({
    name: "create",
    summary: "Create an API key (the key is shown once)",
    scope: "admin",
    mutates: true,
    usersOnly: true,
    replayable: false,
    input: createKeyInput,
    output: createdApiKey,
    handler: async ({ tx, data }) => {
      await requireOrgAdmin(tx);
      return await mintApiKey(tx, data);
    },
  }),
  defineAction({
    name: "list",
    summary: "List API keys (never the keys)",
    scope: "admin",
    mutates: false,
    usersOnly: true,
    input: listKeysInput,
    output: apiKeyList,
    handler: async ({ tx, data }) => {
      await requireOrgAdmin(tx);
      return await listApiKeys(tx, data.include_revoked);
    },
  }),
  defineAction({
    name: "rotate",
    summary: "Rotate an API key, with an optional grace period and new scopes",
    scope: "admin",
    mutates: true,
    usersOnly: true,
    replayable: false,
    input: rotateKeyInput,
    output: apiKeyRotation,
    handler: async ({ tx, data }) => {
      await requireOrgAdmin(tx);
      return await rotateApiKey(tx, data);
    },
  }),
  defineAction({
    name: "revoke",
    summary: "Revoke an API key at once",
    scope: "admin",
    mutates: true,
    usersOnly: true,
    input: revokeKeyInput,
    output: apiKey,
    handler: async ({ tx, data }) => {
      await requireOrgAdmin(tx);
      return await revokeApiKey(tx, data.id);
    },
  }),
];

export default createGroupApp("api-keys", actions);
