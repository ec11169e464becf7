/**
 * What the integrations actions take and answer. Credentials go in (`connect`, `update`)
 * and never come out: answers show the public part (the number, the bot, the from address)
 * and the inbound URL to give the provider.
 */
import { z } from "zod";
import { prefixedId } from "../platform/ids.ts";
import { timestamp } from "../platform/time.ts";
import { channelName } from "../messages/schemas.ts";

export const integrationId = prefixedId("int", "an integration");

export const connectInput = z.strictObject({
  channel: channelName,
  /** The channel's own shape (see each channel's credentials); checked per channel. */
  credentials: z.record(z.string(), z.unknown()),
});
export type ConnectInput = z.output<typeof connectInput>;

export const updateInput = z.strictObject({
  integration_id: integrationId,
  /** The whole set again: replaces the stored credentials (re-sealed). */
  credentials: z.record(z.string(), z.unknown()),
});
export type UpdateInput = z.output<typeof updateInput>;

export const byIntegrationId = z.strictObject({ integration_id: integrationId });

export const listIntegrationsInput = z.strictObject({
  channel: channelName.optional(),
  /** Disconnected integrations are listed only when asked for. */
  include_disconnected: z.boolean().default(false),
});

export const integration = z.strictObject({
  id: integrationId,
  channel: channelName,
  status: z.enum(["connected", "broken", "disconnected"]),
  /** What may be shown of the credentials: never a token, a password or a secret. */
  public: z.record(z.string(), z.unknown()),
  /**
   * Where the provider delivers inbound messages (WhatsApp: paste it in Meta's webhook
   * settings with your verify token; Telegram: registered at connect). Null once
   * disconnected.
   */
  inbound_url: z.string().nullable(),
  /**
   * Email only, in the answers of `connect` and `update` only (never stored for a replay):
   * the secret your inbound-email relay signs each delivery with
   * (`X-BiVelio-Email-Signature: sha256=<hex HMAC-SHA256 of the body>`). Keep it now; a
   * new one comes with every `update`.
   */
  inbound_signing_secret: z.string().optional(),
  /** Why the last setup or test failed (the provider's code and message). */
  error: z.record(z.string(), z.unknown()).nullable(),
  created_at: timestamp,
  updated_at: timestamp,
  disconnected_at: timestamp.nullable(),
}).meta({ id: "Integration" });

export const integrationList = z.strictObject({
  integrations: z.array(integration),
}).meta({ id: "IntegrationList" });

export const testedIntegration = z.strictObject({
  integration,
  ok: z.literal(true),
  /** Sandbox: the provider was not called. */
  simulated: z.boolean(),
}).meta({ id: "IntegrationTest" });
