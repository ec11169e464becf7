/**
 * What the integrations actions take and answer. Credentials go in (`connect`, `update`)
 * and never come out: answers show the public part (the number, the bot, the from address,
 * the calendar, the MCP server's URL) and the inbound URL to give the provider.
 */
import { z } from "zod";
import { prefixedId } from "../platform/ids.ts";
import { timestamp } from "../platform/time.ts";
import { providerName as mcpProviderName } from "../mcp/schemas.ts";

export const integrationId = prefixedId("int", "an integration");

/** Every service an organization connects: kinds.ts has what each one takes and does. */
export const PROVIDERS = ["whatsapp", "telegram", "email", "google_calendar", "mcp"] as const;
export type ProviderName = typeof PROVIDERS[number];

/** The service connected: a messaging channel, Google Calendar, or an MCP server. */
export const providerName = z.enum(PROVIDERS);

/** An integration's name: an MCP server's, as `mcp/execute` calls it (`google_sheets`). */
export const integrationName = mcpProviderName;

export const connectInput = z.strictObject({
  provider: providerName,
  /**
   * Required for `mcp` (what `mcp/execute` names as `provider`); the others are one per
   * environment and named after their provider (absent, or the provider's name).
   */
  name: integrationName.optional(),
  /** The provider's own shape (see each kind's credentials); checked per provider. */
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
  provider: providerName.optional(),
  /** Disconnected integrations are listed only when asked for. */
  include_disconnected: z.boolean().default(false),
});

export const integration = z.strictObject({
  id: integrationId,
  provider: providerName,
  /** The provider's name, or an MCP server's own (`google_sheets`). */
  name: z.string(),
  status: z.enum(["connected", "broken", "disconnected"]),
  /** What may be shown of the credentials: never a token, a password or a secret. */
  public: z.record(z.string(), z.unknown()),
  /**
   * Where the provider delivers inbound messages (WhatsApp: paste it in Meta's webhook
   * settings with the verify token; Telegram: registered at connect). Null once
   * disconnected, and for providers without inbound traffic.
   */
  inbound_url: z.string().nullable(),
  /**
   * Email only, in the answers of `connect` and `update` only (never stored for a replay):
   * the secret your inbound-email relay signs each delivery with
   * (`X-BiVelio-Email-Signature: sha256=<hex HMAC-SHA256 of the body>`). Keep it now; a
   * new one comes with every `update`.
   */
  inbound_signing_secret: z.string().optional(),
  /**
   * WhatsApp only, in the answers of `connect` and `update` only, when the credentials gave
   * none: the verify token made for you, to paste in Meta's webhook settings with
   * `inbound_url`. Keep it now; a new one comes with every `update` that gives none.
   */
  verify_token: z.string().optional(),
  /**
   * Why the last setup, test or disconnect teardown failed (the provider's code and
   * message; `during: "disconnect"` when the provider refused to stop delivering).
   */
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
