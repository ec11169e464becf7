/**
 * What an integration kind is: every third-party service an organization connects through
 * `/v1/integrations` (settings/integrations) implements this contract, keyed by its
 * `provider` name, and the registry below is the one list of them:
 *
 * - the messaging channels (whatsapp, telegram, email), adapted from their own contract
 *   (shared/messages/channel.ts, registry shared/messages/channels.ts);
 * - `google_calendar` (shared/calendar/integration.ts): an OAuth client and refresh token;
 * - `mcp` (shared/mcp/integration.ts): an MCP server's URL and credentials, several at
 *   once, each under its own `name` (what `mcp/execute` calls `provider`).
 *
 * Credentials are checked by the kind's schema, sealed (shared/platform/secrets.ts) and never
 * answered; answers show the kind's public part.
 *
 * The registry is read through functions: the channel modules are part of an import cycle
 * (see shared/messages/channels.ts), so nothing here reads them at module load.
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import type { ReceiverKind } from "../platform/receiver.ts";
import type { Channel } from "../messages/channel.ts";
import { channelModules } from "../messages/channels.ts";
import { googleCalendarIntegration } from "../calendar/integration.ts";
import { mcpIntegration } from "../mcp/integration.ts";
import type { ProviderName } from "./schemas.ts";

/** What a kind's calls get: the environment (the sandbox reaches no provider) and a signal. */
export interface KindCallOptions {
  environment: Environment;
  /** The integration's name (the provider's own, or an MCP server's). */
  name?: string;
  signal?: AbortSignal;
}

/** The receiver made for an integration: where the provider delivers, and its secrets. */
export interface IntegrationReceiver {
  url: string;
  secrets: unknown;
}

export interface IntegrationKind<Credentials = unknown, Public = unknown> {
  provider: ProviderName;
  /**
   * Several connected at once, each under its own `name` (MCP servers). Otherwise one per
   * organization and environment, named after the provider.
   */
  multiple: boolean;
  /** The credentials `connect` and `update` take (zod, strict). */
  credentials: z.ZodType<Credentials>;
  /** What responses may show (never a token, a password or a secret). */
  publicPart(credentials: Credentials): Public;
  /**
   * What is sealed, when not all of the credentials (what is not secret, such as a URL or a
   * calendar id, is kept in the public part instead). With {@link credentialsFrom}.
   */
  sealedPart?(credentials: Credentials): unknown;
  /** The credentials again from the sealed part (null: none sealed) and the public part. */
  credentialsFrom?(sealed: unknown, shown: Public): Credentials;
  /** Checked before anything is stored (MCP: the URL by the private-network guard): 400s. */
  check?(credentials: Credentials, options: { environment: Environment }): Promise<void>;
  /** The receiver kind for inbound traffic; an integration gets a receiver of it. */
  receiverKind?: ReceiverKind;
  /** The receiver's secrets made from the credentials at connect and update. */
  receiverSecrets?(credentials: Credentials): unknown;
  /**
   * Receiver secrets the user pastes at the provider, answered once by connect and update
   * when BiVelio made them (never when the user gave them): answer field → secret's key.
   */
  shownOnce?: Record<string, string>;
  /**
   * In the transaction that stores the credentials (connect, update): state of the kind's
   * own kept beside the integration (the calendar's sync state, reset).
   */
  onSaved?(tx: Tx, integrationId: string, credentials: Credentials): Promise<void>;
  /**
   * With no transaction held, once stored (connect, update): the provider set up (Telegram's
   * setWebhook) or the credentials proved (Google). A refusal leaves the integration broken.
   */
  onConnect?(
    credentials: Credentials,
    receiver: IntegrationReceiver | null,
    options: KindCallOptions,
  ): Promise<void>;
  /**
   * With no transaction held, after disconnect: the provider told to stop (Telegram's
   * deleteWebhook). A refusal is recorded; the integration stays disconnected.
   */
  onDisconnect?(credentials: Credentials, options: KindCallOptions): Promise<void>;
  /** A real call that proves the credentials (`integrations/test`); what it learnt to show. */
  test(credentials: Credentials, options: KindCallOptions): Promise<unknown>;
}

/** A kind of any credentials: each is handed its own, opened from its row. */
// deno-lint-ignore no-explicit-any
export type AnyKind = IntegrationKind<any, any>;

/** What the user pastes at the provider's side, per channel (see `shownOnce`). */
const CHANNEL_SHOWN_ONCE: Partial<Record<ProviderName, Record<string, string>>> = {
  // Meta's webhook settings: the callback URL (inbound_url) and this verify token.
  whatsapp: { verify_token: "verify_token" },
  // The inbound-email relay signs each delivery with it.
  email: { inbound_signing_secret: "signing_secret" },
};

/** A messaging channel as an integration kind: its own contract, one per environment. */
function channelKind(channel: Channel<unknown, unknown>): AnyKind {
  return {
    provider: channel.channel,
    multiple: false,
    credentials: channel.credentials,
    publicPart: (credentials) => channel.publicPart(credentials),
    receiverKind: channel.receiverKind,
    receiverSecrets: channel.receiverSecrets &&
      ((credentials) => channel.receiverSecrets!(credentials)),
    shownOnce: CHANNEL_SHOWN_ONCE[channel.channel],
    onConnect: channel.onConnect &&
      (async (credentials, receiver, { signal }) => {
        // Channels set up their webhook: nothing to do without a receiver.
        if (receiver) await channel.onConnect!(credentials, receiver, { signal });
      }),
    onDisconnect: channel.onDisconnect &&
      ((credentials, { signal }) => channel.onDisconnect!(credentials, { signal })),
    test: (credentials, { signal }) => channel.test(credentials, { signal }),
  };
}

let registry: Record<ProviderName, AnyKind> | undefined;

/** Every integration kind by provider name: the one registry (built on first use). */
export const integrationKinds = (): Record<ProviderName, AnyKind> => {
  if (registry) return registry;
  const channels = channelModules();
  return registry = {
    whatsapp: channelKind(channels.whatsapp),
    telegram: channelKind(channels.telegram),
    email: channelKind(channels.email),
    google_calendar: googleCalendarIntegration,
    mcp: mcpIntegration,
  };
};

export const kindOf = (provider: ProviderName): AnyKind => integrationKinds()[provider];
