/**
 * Integrations: the messaging channels an organization connects per environment. The
 * credentials are checked by the channel's schema, sealed (shared/platform/secrets.ts)
 * before they reach the database, and never answered, logged or put in an error; answers
 * show the channel's public part and the inbound URL of the integration's receiver.
 *
 * `connect` and `update` run in three phases when the channel has setup to do at the
 * provider (Telegram's setWebhook): the integration and its receiver are stored, the call
 * is made with no transaction held, and its outcome is recorded: a refusal leaves the
 * integration `broken` with the provider's code and message, answered 502.
 */
import type { z } from "zod";
import { FailedAfterRecord } from "../platform/app.ts";
import type { Tx } from "../platform/db.ts";
import { ApiError, invalidField, notFound } from "../platform/errors.ts";
import { receiverUrl, registerReceiver, updateReceiver } from "../platform/receiver.ts";
import { openSecrets, sealSecrets } from "../platform/secrets.ts";
import { isoTimestamp } from "../platform/time.ts";
import { validationError } from "../platform/validation.ts";
import type { ChannelName } from "../messages/channel.ts";
import { type AnyChannel, channelOf } from "../messages/channels.ts";
import { apiErrorOfCall, storedErrorOf } from "../messages/messages.ts";
import type {
  ConnectInput,
  integration,
  integrationList,
  testedIntegration,
  UpdateInput,
} from "./schemas.ts";

interface IntegrationRow {
  id: string;
  channel: ChannelName;
  status: "connected" | "broken" | "disconnected";
  sealed_credentials: string;
  public: Record<string, unknown>;
  receiver_id: string | null;
  error: Record<string, unknown> | null;
  created_at: Date;
  updated_at: Date;
  disconnected_at: Date | null;
}

const columns = (tx: Tx) =>
  tx`id, channel, status, sealed_credentials, public, receiver_id, error, created_at,
     updated_at, disconnected_at`;

/** The API's representation: never the sealed credentials. */
export function integrationToApi(row: IntegrationRow): z.input<typeof integration> {
  const kind = channelOf(row.channel).receiverKind?.kind;
  return {
    id: row.id,
    channel: row.channel,
    status: row.status,
    public: row.public,
    inbound_url: kind && row.receiver_id && row.status !== "disconnected"
      ? receiverUrl(kind, row.receiver_id)
      : null,
    error: row.error,
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
    disconnected_at: isoTimestamp(row.disconnected_at),
  };
}

async function findIntegration(tx: Tx, id: string, options: { lock?: boolean } = {}) {
  const [row] = await tx<IntegrationRow[]>`
    select ${columns(tx)} from public.integrations where id = ${id}
    ${options.lock ? tx`for update` : tx``}
  `;
  if (!row) throw notFound("Integration", id);
  return row;
}

export async function listIntegrations(
  tx: Tx,
  query: { channel?: ChannelName; include_disconnected: boolean },
): Promise<z.input<typeof integrationList>> {
  const rows = await tx<IntegrationRow[]>`
    select ${columns(tx)} from public.integrations
    where (${query.channel ?? null}::text is null or channel = ${query.channel ?? null})
      and (${query.include_disconnected} or status <> 'disconnected')
    order by created_at desc, id desc
  `;
  return { integrations: rows.map(integrationToApi) };
}

export const getIntegration = async (tx: Tx, id: string) =>
  integrationToApi(await findIntegration(tx, id));

/** The credentials as the channel's schema takes them, or a 400 naming `credentials.<field>`. */
function parseCredentials(channel: AnyChannel, credentials: unknown): unknown {
  const result = channel.credentials.safeParse(credentials);
  if (result.success) return result.data;
  // The message names the field and the rule, never the value given.
  throw validationError(result.error.issues[0], credentials, "credentials", ["credentials"]);
}

// ---------------------------------------------------------------------------------------
// connect and update: store, set up at the provider, record
// ---------------------------------------------------------------------------------------

/**
 * The receiver secret a channel's user must configure at their side, answered once by
 * connect/update: inbound email's relay signs with it, when BiVelio made it (one the user
 * gave as `inbound_secret` is a credential: never answered). WhatsApp's secrets are the
 * user's own; Telegram's is given to Telegram by setWebhook.
 */
function shownOnce(prepared: PreparedSetup): { inbound_signing_secret?: string } {
  const secrets = prepared.receiver?.secrets as { signing_secret?: unknown } | undefined;
  const secret = secrets?.signing_secret;
  const given = Object.values(prepared.credentials as Record<string, unknown>);
  return prepared.channel === "email" && typeof secret === "string" && !given.includes(secret)
    ? { inbound_signing_secret: secret }
    : {};
}

/** What the first phase of connect/update hands the setup call. */
export interface PreparedSetup {
  integrationId: string;
  channel: ChannelName;
  credentials: unknown;
  receiver: { url: string; secrets: unknown } | null;
  /** Sandbox: no call to the provider. */
  simulated: boolean;
}

const alreadyConnected = (channel: ChannelName) =>
  invalidField(
    "channel",
    "already_connected",
    `A ${channel} integration is already connected in this environment: update or ` +
      "disconnect it first.",
  );

export async function startConnect(
  tx: Tx,
  input: ConnectInput,
  simulated: boolean,
): Promise<PreparedSetup> {
  const channel = channelOf(input.channel);
  const credentials = parseCredentials(channel, input.credentials);
  const [existing] = await tx`
    select 1 from public.integrations where channel = ${input.channel} and status <> 'disconnected'
  `;
  if (existing) throw alreadyConnected(input.channel);

  let receiver: PreparedSetup["receiver"] = null;
  let receiverId: string | null = null;
  if (channel.receiverKind) {
    const secrets = channel.receiverSecrets?.(credentials) ?? {};
    const registered = await registerReceiver(tx, { kind: channel.receiverKind, secrets });
    receiver = { url: registered.url, secrets };
    receiverId = registered.id;
  }
  const sealed = await sealSecrets(credentials);
  const publicPart = channel.publicPart(credentials) as Record<string, unknown>;
  // A concurrent connect of the same channel that committed first: a 400, not a 500.
  const [row] = await tx<{ id: string }[]>`
    insert into public.integrations (channel, sealed_credentials, public, receiver_id)
    values (${input.channel}, ${sealed}, ${tx.json(publicPart as never)}, ${receiverId})
    on conflict (org_id, environment, channel) where status <> 'disconnected' do nothing
    returning id
  `;
  if (!row) throw alreadyConnected(input.channel);
  return { integrationId: row.id, channel: input.channel, credentials, receiver, simulated };
}

export async function startUpdate(
  tx: Tx,
  input: UpdateInput,
  simulated: boolean,
): Promise<PreparedSetup> {
  const row = await findIntegration(tx, input.integration_id, { lock: true });
  if (row.status === "disconnected") {
    throw invalidField(
      "integration_id",
      "disconnected",
      `Integration '${row.id}' is disconnected; connect the channel again instead.`,
    );
  }
  const channel = channelOf(row.channel);
  const credentials = parseCredentials(channel, input.credentials);
  let receiver: PreparedSetup["receiver"] = null;
  if (channel.receiverKind && row.receiver_id) {
    const secrets = channel.receiverSecrets?.(credentials) ?? {};
    await updateReceiver(tx, row.receiver_id, { secrets });
    receiver = { url: receiverUrl(channel.receiverKind.kind, row.receiver_id), secrets };
  }
  await tx`
    update public.integrations
    set sealed_credentials = ${await sealSecrets(credentials)},
        public = ${tx.json(channel.publicPart(credentials) as never)}, updated_at = now()
    where id = ${row.id}
  `;
  return { integrationId: row.id, channel: row.channel, credentials, receiver, simulated };
}

/** Phase 2: the channel's setup at the provider (Telegram's setWebhook), if it has one. */
export async function runSetup(prepared: PreparedSetup, signal: AbortSignal): Promise<void> {
  const channel = channelOf(prepared.channel);
  if (prepared.simulated || !channel.onConnect || !prepared.receiver) return;
  await channel.onConnect(prepared.credentials, prepared.receiver, { signal });
}

/** Marks an integration connected (the provider agreed) or broken (it refused: why). */
async function recordProviderOutcome(
  tx: Tx,
  id: string,
  outcome: { ok: true; public?: Record<string, unknown> } | { ok: false; error: ApiError },
) {
  const [row] = await tx<IntegrationRow[]>`
    update public.integrations
    set status = ${outcome.ok ? "connected" : "broken"},
        error = ${outcome.ok ? null : tx.json(storedErrorOf(outcome.error) as never)},
        public = public || ${tx.json(((outcome.ok && outcome.public) || {}) as never)},
        updated_at = now()
    where id = ${id} and status <> 'disconnected'
    returning ${columns(tx)}
  `;
  return row ?? await findIntegration(tx, id);
}

/** The integration's id rides along with a provider's refusal, so the caller can fix it. */
const withIntegration = (error: ApiError, id: string) =>
  new ApiError(error.code, error.message, {
    ...error.options,
    details: { ...error.options.details, integration_id: id, integration_status: "broken" },
  });

/** Phase 3: connected, or broken with the provider's code and message (502). */
export async function finishSetup(
  tx: Tx,
  prepared: PreparedSetup,
  outcome: { ok: true } | { ok: false; error: unknown },
): Promise<z.input<typeof integration> | FailedAfterRecord> {
  if (outcome.ok) {
    const row = await recordProviderOutcome(tx, prepared.integrationId, outcome);
    return { ...integrationToApi(row), ...shownOnce(prepared) };
  }
  const error = apiErrorOfCall(outcome.error);
  await recordProviderOutcome(tx, prepared.integrationId, { ok: false, error });
  return new FailedAfterRecord(withIntegration(error, prepared.integrationId));
}

// ---------------------------------------------------------------------------------------
// disconnect and test
// ---------------------------------------------------------------------------------------

/** Disconnects: the receiver stops answering (404), messages are kept. Repeating is a no-op. */
export async function disconnectIntegration(tx: Tx, id: string) {
  const row = await findIntegration(tx, id, { lock: true });
  if (row.status === "disconnected") return integrationToApi(row);
  if (row.receiver_id) await updateReceiver(tx, row.receiver_id, { status: "disabled" });
  const [updated] = await tx<IntegrationRow[]>`
    update public.integrations
    set status = 'disconnected', disconnected_at = now(), updated_at = now()
    where id = ${id}
    returning ${columns(tx)}
  `;
  return integrationToApi(updated);
}

export interface PreparedTest {
  integrationId: string;
  channel: ChannelName;
  sealedCredentials: string;
  simulated: boolean;
}

export async function startTest(tx: Tx, id: string, simulated: boolean): Promise<PreparedTest> {
  const row = await findIntegration(tx, id);
  if (row.status === "disconnected") {
    throw invalidField("integration_id", "disconnected", `Integration '${id}' is disconnected.`);
  }
  return {
    integrationId: row.id,
    channel: row.channel,
    sealedCredentials: row.sealed_credentials,
    simulated,
  };
}

/** Phase 2 of test: a real call that proves the credentials (sandbox: none). */
export async function runTest(prepared: PreparedTest, signal: AbortSignal) {
  if (prepared.simulated) return null;
  const credentials = await openSecrets(prepared.sealedCredentials);
  return await channelOf(prepared.channel).test(credentials, { signal }) as Record<
    string,
    unknown
  >;
}

export async function finishTest(
  tx: Tx,
  prepared: PreparedTest,
  outcome: { ok: true; value: Record<string, unknown> | null } | { ok: false; error: unknown },
): Promise<z.input<typeof testedIntegration> | FailedAfterRecord> {
  if (outcome.ok) {
    const row = await recordProviderOutcome(tx, prepared.integrationId, {
      ok: true,
      public: outcome.value ?? undefined,
    });
    return { integration: integrationToApi(row), ok: true, simulated: prepared.simulated };
  }
  const error = apiErrorOfCall(outcome.error);
  await recordProviderOutcome(tx, prepared.integrationId, { ok: false, error });
  return new FailedAfterRecord(withIntegration(error, prepared.integrationId));
}
