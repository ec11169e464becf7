/**
 * Integrations: every third-party service an organization connects per environment (the
 * messaging channels, Google Calendar, MCP servers; kinds.ts). The credentials are checked
 * by the kind's schema, sealed (shared/platform/secrets.ts) before they reach the database,
 * and never answered, logged or put in an error; answers show the kind's public part and the
 * inbound URL of the integration's receiver.
 *
 * The actions that reach the provider run in three phases (shared/platform/app.ts): the
 * change is stored, the call is made with no transaction held, and its outcome recorded.
 * - connect, update: setup or proof at the provider (Telegram's setWebhook, Google's token
 *   refresh); a refusal leaves the integration `broken` with the provider's code and
 *   message, answered 502.
 * - disconnect: the receiver disabled, then the provider told to stop (Telegram's
 *   deleteWebhook); a refusal is recorded in `error` and answered, the disconnect stays.
 * - test: a real call that proves the credentials.
 * Sandbox (test environment) integrations call no provider.
 */
import type { z } from "zod";
import { FailedAfterRecord } from "../platform/app.ts";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError, invalidField, notFound } from "../platform/errors.ts";
import { receiverUrl, registerReceiver, updateReceiver } from "../platform/receiver.ts";
import { openSecrets, sealSecrets } from "../platform/secrets.ts";
import { isoTimestamp } from "../platform/time.ts";
import { validationError } from "../platform/validation.ts";
import { apiErrorOfCall, storedErrorOf } from "../messages/messages.ts";
import { type AnyKind, type IntegrationReceiver, kindOf } from "./kinds.ts";
import type {
  ConnectInput,
  integration,
  integrationList,
  ProviderName,
  testedIntegration,
  UpdateInput,
} from "./schemas.ts";

interface IntegrationRow {
  id: string;
  provider: ProviderName;
  name: string;
  status: "connected" | "broken" | "disconnected";
  /** Null only for an MCP server connected without credentials before the fold. */
  sealed_credentials: string | null;
  public: Record<string, unknown>;
  receiver_id: string | null;
  error: Record<string, unknown> | null;
  created_at: Date;
  updated_at: Date;
  disconnected_at: Date | null;
}

const columns = (tx: Tx) =>
  tx`id, provider, name, status, sealed_credentials, public, receiver_id, error, created_at,
     updated_at, disconnected_at`;

/** The sandbox never reaches a provider. */
const simulatedIn = (environment: Environment) => environment === "test";

/** The API's representation: never the sealed credentials. */
export function integrationToApi(row: IntegrationRow): z.input<typeof integration> {
  const kind = kindOf(row.provider).receiverKind?.kind;
  return {
    id: row.id,
    provider: row.provider,
    name: row.name,
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
  query: { provider?: ProviderName; include_disconnected: boolean },
): Promise<z.input<typeof integrationList>> {
  const rows = await tx<IntegrationRow[]>`
    select ${columns(tx)} from public.integrations
    where (${query.provider ?? null}::text is null or provider = ${query.provider ?? null})
      and (${query.include_disconnected} or status <> 'disconnected')
    order by created_at desc, id desc
  `;
  return { integrations: rows.map(integrationToApi) };
}

export const getIntegration = async (tx: Tx, id: string) =>
  integrationToApi(await findIntegration(tx, id));

/** The credentials as the kind's schema takes them, or a 400 naming `credentials.<field>`. */
function parseCredentials(kind: AnyKind, credentials: unknown): unknown {
  const result = kind.credentials.safeParse(credentials);
  if (result.success) return result.data;
  // The message names the field and the rule, never the value given.
  throw validationError(result.error.issues[0], credentials, "credentials", ["credentials"]);
}

/** What is sealed of the credentials (all, unless the kind keeps a public part aside). */
const sealedOf = (kind: AnyKind, credentials: unknown) =>
  sealSecrets(kind.sealedPart ? kind.sealedPart(credentials) : credentials);

/** The credentials again, from a row: opened, and completed from the public part. */
async function credentialsOf(
  kind: AnyKind,
  row: Pick<IntegrationRow, "sealed_credentials" | "public">,
) {
  const sealed = row.sealed_credentials ? await openSecrets(row.sealed_credentials) : null;
  return kind.credentialsFrom ? kind.credentialsFrom(sealed, row.public) : sealed;
}

/** MCP servers are named; the others are named after their provider. */
function nameOf(kind: AnyKind, name: string | undefined): string {
  if (kind.multiple) {
    if (name) return name;
    throw invalidField(
      "name",
      "required",
      `The 'name' field is required for ${kind.provider}: the name calls use ` +
        "(mcp/execute's `provider`, such as google_sheets).",
    );
  }
  if (name === undefined || name === kind.provider) return kind.provider;
  throw invalidField(
    "name",
    "not_allowed",
    `A ${kind.provider} integration is one per environment and takes no name.`,
  );
}

// ---------------------------------------------------------------------------------------
// connect and update: store, set up at the provider, record
// ---------------------------------------------------------------------------------------

/** What the first phase of connect/update hands the setup call. */
export interface PreparedSetup {
  integrationId: string;
  provider: ProviderName;
  name: string;
  credentials: unknown;
  receiver: IntegrationReceiver | null;
  environment: Environment;
}

/**
 * The receiver secrets the user pastes at their side, answered once by connect/update when
 * BiVelio made them (email's signing secret, WhatsApp's verify token). One the user gave in
 * the credentials is theirs already: never answered.
 */
function shownOnce(prepared: PreparedSetup): Record<string, string> {
  const fields = kindOf(prepared.provider).shownOnce ?? {};
  const secrets = (prepared.receiver?.secrets ?? {}) as Record<string, unknown>;
  const given = Object.values(prepared.credentials as Record<string, unknown>);
  const shown: Record<string, string> = {};
  for (const [field, key] of Object.entries(fields)) {
    const secret = secrets[key];
    if (typeof secret === "string" && !given.includes(secret)) shown[field] = secret;
  }
  return shown;
}

const alreadyConnected = (kind: AnyKind, name: string) =>
  invalidField(
    kind.multiple ? "name" : "provider",
    "already_connected",
    kind.multiple
      ? `An ${kind.provider} integration named '${name}' is already connected in this ` +
        "environment: update or disconnect it first, or choose another name."
      : `A ${kind.provider} integration is already connected in this environment: update or ` +
        "disconnect it first.",
  );

export async function startConnect(
  tx: Tx,
  input: ConnectInput,
  environment: Environment,
): Promise<PreparedSetup> {
  const kind = kindOf(input.provider);
  const name = nameOf(kind, input.name);
  const credentials = parseCredentials(kind, input.credentials);
  await kind.check?.(credentials, { environment });
  const [existing] = await tx`
    select 1 from public.integrations
    where provider = ${input.provider} and name = ${name} and status <> 'disconnected'
  `;
  if (existing) throw alreadyConnected(kind, name);

  let receiver: PreparedSetup["receiver"] = null;
  let receiverId: string | null = null;
  if (kind.receiverKind) {
    const secrets = kind.receiverSecrets?.(credentials) ?? {};
    const registered = await registerReceiver(tx, { kind: kind.receiverKind, secrets });
    receiver = { url: registered.url, secrets };
    receiverId = registered.id;
  }
  const publicPart = kind.publicPart(credentials) as Record<string, unknown>;
  // A concurrent connect of the same provider and name that committed first: a 400, not a 500.
  const [row] = await tx<{ id: string }[]>`
    insert into public.integrations (provider, name, sealed_credentials, public, receiver_id)
    values (${input.provider}, ${name}, ${await sealedOf(kind, credentials)},
            ${tx.json(publicPart as never)}, ${receiverId})
    on conflict (org_id, environment, provider, name) where status <> 'disconnected' do nothing
    returning id
  `;
  if (!row) throw alreadyConnected(kind, name);
  await kind.onSaved?.(tx, row.id, credentials);
  return {
    integrationId: row.id,
    provider: input.provider,
    name,
    credentials,
    receiver,
    environment,
  };
}

export async function startUpdate(
  tx: Tx,
  input: UpdateInput,
  environment: Environment,
): Promise<PreparedSetup> {
  const row = await findIntegration(tx, input.integration_id, { lock: true });
  if (row.status === "disconnected") {
    throw invalidField(
      "integration_id",
      "disconnected",
      `Integration '${row.id}' is disconnected; connect the provider again instead.`,
    );
  }
  const kind = kindOf(row.provider);
  const credentials = parseCredentials(kind, input.credentials);
  await kind.check?.(credentials, { environment });
  let receiver: PreparedSetup["receiver"] = null;
  if (kind.receiverKind && row.receiver_id) {
    const secrets = kind.receiverSecrets?.(credentials) ?? {};
    await updateReceiver(tx, row.receiver_id, { secrets });
    receiver = { url: receiverUrl(kind.receiverKind.kind, row.receiver_id), secrets };
  }
  await tx`
    update public.integrations
    set sealed_credentials = ${await sealedOf(kind, credentials)},
        public = ${tx.json(kind.publicPart(credentials) as never)}, updated_at = now()
    where id = ${row.id}
  `;
  await kind.onSaved?.(tx, row.id, credentials);
  return {
    integrationId: row.id,
    provider: row.provider,
    name: row.name,
    credentials,
    receiver,
    environment,
  };
}

/** Phase 2: the kind's setup at the provider (Telegram's setWebhook), if it has one. */
export async function runSetup(prepared: PreparedSetup, signal: AbortSignal): Promise<void> {
  const kind = kindOf(prepared.provider);
  if (simulatedIn(prepared.environment) || !kind.onConnect) return;
  await kind.onConnect(prepared.credentials, prepared.receiver, {
    environment: prepared.environment,
    name: prepared.name,
    signal,
  });
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
// disconnect: the receiver off, then the provider told (no transaction held), recorded
// ---------------------------------------------------------------------------------------

export interface PreparedDisconnect {
  row: IntegrationRow;
  /** Disconnected by this call: its teardown is to run. False when it already was. */
  disconnectedNow: boolean;
  environment: Environment;
}

/** Phase 1: disconnected, its receiver stops answering (404); messages are kept. */
export async function startDisconnect(
  tx: Tx,
  id: string,
  environment: Environment,
): Promise<PreparedDisconnect> {
  const row = await findIntegration(tx, id, { lock: true });
  if (row.status === "disconnected") return { row, disconnectedNow: false, environment };
  if (row.receiver_id) await updateReceiver(tx, row.receiver_id, { status: "disabled" });
  const [updated] = await tx<IntegrationRow[]>`
    update public.integrations
    set status = 'disconnected', disconnected_at = now(), updated_at = now()
    where id = ${id}
    returning ${columns(tx)}
  `;
  return { row: updated, disconnectedNow: true, environment };
}

/** Phase 2: the kind's teardown at the provider (Telegram's deleteWebhook); sandbox: none. */
export async function runTeardown(prepared: PreparedDisconnect, signal: AbortSignal) {
  const kind = kindOf(prepared.row.provider);
  if (!prepared.disconnectedNow || simulatedIn(prepared.environment) || !kind.onDisconnect) {
    return;
  }
  await kind.onDisconnect(await credentialsOf(kind, prepared.row), {
    environment: prepared.environment,
    name: prepared.row.name,
    signal,
  });
}

/**
 * Phase 3: the disconnect stands either way (the receiver is off); a teardown the provider
 * refused is kept in `error` (`during: "disconnect"`) and answered there.
 */
export async function finishDisconnect(
  tx: Tx,
  prepared: PreparedDisconnect,
  outcome: { ok: true } | { ok: false; error: unknown },
): Promise<z.input<typeof integration>> {
  if (outcome.ok) return integrationToApi(prepared.row);
  const error = { ...storedErrorOf(apiErrorOfCall(outcome.error)), during: "disconnect" };
  const [row] = await tx<IntegrationRow[]>`
    update public.integrations set error = ${tx.json(error)}, updated_at = now()
    where id = ${prepared.row.id}
    returning ${columns(tx)}
  `;
  return integrationToApi(row ?? prepared.row);
}

// ---------------------------------------------------------------------------------------
// test
// ---------------------------------------------------------------------------------------

export interface PreparedTest {
  row: IntegrationRow;
  environment: Environment;
}

export async function startTest(
  tx: Tx,
  id: string,
  environment: Environment,
): Promise<PreparedTest> {
  const row = await findIntegration(tx, id);
  if (row.status === "disconnected") {
    throw invalidField("integration_id", "disconnected", `Integration '${id}' is disconnected.`);
  }
  return { row, environment };
}

/** Phase 2 of test: a real call that proves the credentials (sandbox: none). */
export async function runTest(prepared: PreparedTest, signal: AbortSignal) {
  if (simulatedIn(prepared.environment)) return null;
  const kind = kindOf(prepared.row.provider);
  return await kind.test(await credentialsOf(kind, prepared.row), {
    environment: prepared.environment,
    name: prepared.row.name,
    signal,
  }) as Record<string, unknown>;
}

export async function finishTest(
  tx: Tx,
  prepared: PreparedTest,
  outcome: { ok: true; value: Record<string, unknown> | null } | { ok: false; error: unknown },
): Promise<z.input<typeof testedIntegration> | FailedAfterRecord> {
  const id = prepared.row.id;
  if (outcome.ok) {
    const row = await recordProviderOutcome(tx, id, {
      ok: true,
      public: outcome.value ?? undefined,
    });
    return {
      integration: integrationToApi(row),
      ok: true,
      simulated: simulatedIn(prepared.environment),
    };
  }
  const error = apiErrorOfCall(outcome.error);
  await recordProviderOutcome(tx, id, { ok: false, error });
  return new FailedAfterRecord(withIntegration(error, id));
}
