/**
 * Builds the Hono app of one endpoint group (one edge function) the same way for every
 * group: the `{action, data}` dispatch with optional path suffix, and the shared
 * middleware in the order DESIGN.md gives:
 *
 *   request id → CORS → body limit + JSON → authentication → rate limit → action → scope
 *   → idempotency → zod validation of `data` → handler (in an RLS transaction) → envelope
 */
import { type Context, Hono } from "hono";
import { getPath } from "hono/utils/url";
import type { z } from "zod";
import { AnswerStream, STREAMING } from "./answer-stream.ts";
import { databaseUnreachable, serviceSql, type Tx, withClaims } from "./db.ts";
import { ApiError } from "./errors.ts";
import { authenticate } from "./middleware/authenticate.ts";
import { cors } from "./middleware/cors.ts";
import { claimIdempotencyKey } from "./middleware/idempotency.ts";
import { DEFAULT_BODY_LIMIT, jsonBody } from "./middleware/json-body.ts";
import { rateLimit, type RateLimitState } from "./middleware/rate-limit.ts";
import { requestId } from "./middleware/request-id.ts";
import {
  acceptedScopes,
  hasScope,
  type Principal,
  type RequiredScope,
  SCOPE_GROUPS,
  type ScopeLevel,
  scopeName,
} from "./principal.ts";
import { validate } from "./validation.ts";

declare module "hono" {
  interface ContextVariableMap {
    requestId: string;
    body: unknown;
    principal: Principal;
    rateLimit: RateLimitState;
  }
}

export interface ActionContext<Data> {
  data: Data;
  principal: Principal;
  /** The request's transaction: role `authenticated` with the caller's claims (RLS applies). */
  tx: Tx;
  requestId: string;
}

/** What an action's external call gets: no transaction, and the request's abort signal. */
export interface CallContext<Data> {
  data: Data;
  principal: Principal;
  requestId: string;
  /** Aborts when the client goes away: stop a generation, cancel a provider call. */
  signal: AbortSignal;
  /**
   * Sends the client an event before the answer (a model's partial output). The first one
   * turns the answer into `text/event-stream`: the events, then the final answer as a
   * `result` event (or its error as an `error` event). Never called: a JSON answer.
   */
  emit: (event: string, data: unknown) => void;
}

/** How the external call ended, for the phase that records it. */
export type CallOutcome<Called> = { ok: true; value: Called } | { ok: false; error: unknown };

/**
 * An action's answer that is an error, but whose record must commit first (a provider
 * refused a message: the message is stored as failed, then the client gets the 502).
 */
export class FailedAfterRecord {
  constructor(readonly error: ApiError) {}
}

/** An answer of bytes instead of the JSON envelope (a PDF): never stored for replay. */
export class BinaryAnswer {
  constructor(
    readonly bytes: Uint8Array,
    readonly contentType: string,
    /** Offered as the download's file name (Content-Disposition). */
    readonly filename?: string,
  ) {}
}

/**
 * What an action that answers bytes declares as its `output` (a PDF): the content type,
 * for OpenAPI. Its last phase returns a {@link BinaryAnswer}.
 */
export class BinaryOutput {
  constructor(readonly contentType: string) {}
}
export const binaryOutput = (contentType: string) => new BinaryOutput(contentType);

/** An action's `output`: the zod schema of its answer's `data`, or bytes of a content type. */
export type ActionOutput = z.ZodType | BinaryOutput;

/** What an action's last phase returns for its `output`: data its schema accepts, or bytes. */
export type AnswerOf<O extends ActionOutput> = O extends z.ZodType ? z.input<O> : BinaryAnswer;

/**
 * An action. Most run in one phase: `handler` does everything inside the request's RLS
 * transaction. An action that calls another system (Gemini, a provider, an MCP server) runs
 * in three, so no pooled connection is held while it waits on that system:
 *
 *   handler (validate and read, transaction 1) → call (no transaction) → record (transaction 2)
 *
 * The answer is what the last phase present returns; with Idempotency-Key it is stored in
 * the last transaction (or right after the call when there is no record), so a replay gives
 * the final answer.
 */
export interface Action<
  S extends z.ZodType = z.ZodType,
  Prepared = unknown,
  Called = unknown,
  O extends ActionOutput = ActionOutput,
> {
  /** The `action` value in the body. */
  name: string;
  /** One line for the API reference. */
  summary?: string;
  /** Path suffixes that name this action (`/v1/workflows/instances` → list_instances). */
  paths?: string[];
  /**
   * The scope level a caller needs in the action's group (the group is the one
   * createGroupApp builds): `read` in contacts is met by `contacts:read` or the broad
   * `read`, or a higher level of either. "any": every authenticated caller.
   */
  scope: ScopeLevel | "any";
  /**
   * Whether the action changes state. Only such actions honour Idempotency-Key (a read
   * replayed from a stored answer would be stale). Said by each action, never guessed from
   * its scope: admin reads exist (webhooks.list).
   */
  mutates: boolean;
  /** Only signed-in users (not API keys) may call it: key management. */
  usersOnly?: boolean;
  /**
   * Whether a mutating action honours Idempotency-Key (default true). False where the
   * response holds a secret shown once (new API keys): it must not be stored for replay.
   */
  replayable?: boolean;
  input: S;
  /**
   * The schema of the final answer's `data` (what the last phase present returns), strict
   * so an undocumented field is caught: OpenAPI documents it and the tests check every
   * answer against it. `binaryOutput(type)` for actions that answer bytes.
   */
  output: O;
  /**
   * The events a streamed answer sends before its last (an action whose `call` emits:
   * agents' invoke with `stream: true`), by name with their data's schema. The stream then
   * ends with `result` (the envelope of `output`) or `error` (the error envelope). OpenAPI
   * documents them as the 200's text/event-stream alternative.
   */
  events?: Record<string, z.ZodType>;
  /** Phase 1, in the RLS transaction; the whole action when there is no `call`. */
  handler(ctx: ActionContext<z.output<S>>): Promise<Prepared>;
  /**
   * Phase 2, after phase 1 committed, holding no transaction or connection: the external
   * call (or a wait for work the commit started: sync workflow execute). Without `record`
   * its result is the answer.
   */
  call?(prepared: Prepared, ctx: CallContext<z.output<S>>): Promise<Called>;
  /**
   * Phase 3, in a new RLS transaction: records how the call ended (a failure included) and
   * gives the answer, or a {@link FailedAfterRecord} to answer an error once it committed.
   */
  record?(
    outcome: CallOutcome<Called>,
    ctx: ActionContext<z.output<S>> & { prepared: Prepared },
  ): Promise<unknown>;
}

/** An action's fields but its phases. */
type Declared<S extends z.ZodType, O extends ActionOutput> = Omit<
  Action<S, never, never, O>,
  "handler" | "call" | "record"
>;

/**
 * Declares an action with its input and output schemas: the phases get the parsed data,
 * and the last phase must return what `output` accepts (a mapper that drifts from the
 * schema fails the type check). One overload per shape of phases, the most phases first:
 * TypeScript types a phase's parameters from the first overload it tries.
 */
export function defineAction<S extends z.ZodType, O extends ActionOutput, Prepared, Called>(
  action: Declared<S, O> & {
    handler(ctx: ActionContext<z.output<S>>): Promise<Prepared>;
    call(prepared: Prepared, ctx: CallContext<z.output<S>>): Promise<Called>;
    record(
      outcome: CallOutcome<Called>,
      ctx: ActionContext<z.output<S>> & { prepared: Prepared },
    ): Promise<AnswerOf<O> | FailedAfterRecord>;
  },
): Action;
export function defineAction<S extends z.ZodType, O extends ActionOutput, Prepared>(
  action: Declared<S, O> & {
    handler(ctx: ActionContext<z.output<S>>): Promise<Prepared>;
    call(prepared: Prepared, ctx: CallContext<z.output<S>>): Promise<AnswerOf<O>>;
  },
): Action;
export function defineAction<S extends z.ZodType, O extends ActionOutput>(
  action: Declared<S, O> & {
    handler(ctx: ActionContext<z.output<S>>): Promise<AnswerOf<O>>;
  },
): Action;
export function defineAction(action: unknown): Action {
  return action as Action;
}

export function envelope(data: unknown) {
  return { success: true as const, data };
}

/** Anything thrown as the ApiError to answer: ApiErrors as they are, the rest as 500/503. */
const apiErrorOf = (c: Context, error: unknown) =>
  error instanceof ApiError ? error : unexpected(c, error);

/** The error envelope for anything thrown. */
export function errorResponse(c: Context, error: unknown) {
  const apiError = apiErrorOf(c, error);
  return c.json(apiError.toBody(), apiError.status as never, apiError.options.headers);
}

/** Logs an unexpected error (message only, never request data) and says what to do. */
function unexpected(c: Context, error: unknown): ApiError {
  console.error(JSON.stringify({
    level: "error",
    request_id: c.get("requestId"),
    path: new URL(c.req.url).pathname,
    error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
  }));
  if (databaseUnreachable(error)) {
    return new ApiError(
      "SERVICE_UNAVAILABLE",
      "The database is unavailable. Retry in a few seconds.",
      {
        headers: { "Retry-After": "5" },
      },
    );
  }
  return new ApiError(
    "INTERNAL_ERROR",
    "An unexpected error occurred. Retry with exponential backoff; quote the X-Request-Id if it persists.",
  );
}

/**
 * The path a function routes on. Supabase hands a function `/<name>/…`; the local gateway
 * passes `/v1/<name>/…` and `/functions/v1/<name>/…` through unchanged (no copy of the
 * request), so those prefixes are dropped here.
 */
export function functionPath(request: Request) {
  const path = getPath(request);
  if (path.startsWith("/v1/")) return path.slice(3);
  if (path.startsWith("/functions/v1/")) return path.slice(13);
  return path;
}

/** A Hono app with the request id, CORS and error envelope every function shares. */
export function newApp(basePath: string) {
  const app = new Hono({ getPath: functionPath }).basePath(basePath);
  app.use("*", requestId());
  app.use("*", cors());
  app.onError((error, c) => errorResponse(c, error));
  app.notFound((c) =>
    errorResponse(
      c,
      new ApiError("RESOURCE_NOT_FOUND", `No endpoint at ${new URL(c.req.url).pathname}.`),
    )
  );
  return app;
}

/** Finds the action a request names by its body's `action` and its optional path suffix. */
function actionResolver(actions: Action[]) {
  const byName = new Map(actions.map((a) => [a.name, a]));
  const bySuffixes = new Map(actions.flatMap((a) => (a.paths ?? [a.name]).map((p) => [p, a])));
  return (named: unknown, suffix: string | undefined) =>
    resolveAction(byName, suffix === undefined ? undefined : bySuffixes.get(suffix), named, suffix);
}

function resolveAction(
  byName: Map<string, Action>,
  bySuffix: Action | undefined,
  named: unknown,
  suffix: string | undefined,
): Action {
  if (suffix !== undefined && !bySuffix) {
    throw new ApiError("RESOURCE_NOT_FOUND", `No endpoint at '${suffix}'.`);
  }
  if (named === undefined) {
    if (bySuffix) return bySuffix;
    throw new ApiError("VALIDATION_ERROR", "The 'action' field is required.", {
      details: { field: "action", constraint: "required" },
    });
  }
  const action = typeof named === "string" ? byName.get(named) : undefined;
  if (!action) {
    throw new ApiError("VALIDATION_ERROR", `Unknown action '${String(named)}'.`, {
      details: { field: "action", constraint: "enum", allowed: [...byName.keys()] },
    });
  }
  if (bySuffix && bySuffix !== action) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `The path names action '${bySuffix.name}' but the body says '${action.name}'.`,
      { details: { field: "action", constraint: "matches_path" } },
    );
  }
  return action;
}

/**
 * The scope an action of `group` needs, or null when any caller may call it. Actions only
 * users may call need a broad scope (their scopes follow their role), not a group's.
 */
export function requiredScope(group: string, action: Action): RequiredScope | null {
  if (action.scope === "any") return null;
  return { group: action.usersOnly ? null : group, level: action.scope };
}

/** Whether Idempotency-Key applies: state-changing actions whose answer may be stored. */
export const honoursIdempotencyKey = (action: Action) =>
  action.mutates && action.replayable !== false;

function checkAccess(group: string, action: Action, principal: Principal) {
  if (action.usersOnly && principal.kind !== "user") {
    throw new ApiError(
      "AUTH_INSUFFICIENT_SCOPE",
      "This operation needs a signed-in user's token; API keys cannot call it.",
    );
  }
  const required = requiredScope(group, action);
  if (required && !hasScope(principal, required)) {
    const who = principal.kind === "api_key" ? "The API key" : "Your role";
    const [needed, ...alsoAllowed] = acceptedScopes(required);
    throw new ApiError(
      "AUTH_INSUFFICIENT_SCOPE",
      `${who} does not have the '${needed}' scope` +
        (alsoAllowed.length
          ? `; any of ${alsoAllowed.map((s) => `'${s}'`).join(", ")} would also do.`
          : "."),
      {
        details: { required_scope: scopeName(required), accepted_scopes: [needed, ...alsoAllowed] },
      },
    );
  }
}

/** A group whose actions API keys may call must be one keys can be limited to. */
function assertScopeGroup(group: string, actions: Action[]) {
  const keysCallIt = actions.some((a) => a.scope !== "any" && !a.usersOnly);
  if (keysCallIt && !(SCOPE_GROUPS as readonly string[]).includes(group)) {
    throw new Error(`Group '${group}' has scoped actions: add it to SCOPE_GROUPS (principal.ts).`);
  }
}

/** The body as `{action?, data?}`; an absent body is allowed when the path names the action. */
function envelopeOf(body: unknown): { action?: unknown; data?: unknown } {
  if (body === undefined) return {};
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError("VALIDATION_ERROR", "The body must be a JSON object {action, data}.", {
      details: { field: "body", constraint: "type" },
    });
  }
  return body;
}

interface PhaseContext {
  data: unknown;
  principal: Principal;
  requestId: string;
  signal: AbortSignal;
  emit: (event: string, data: unknown) => void;
  /** Stores the final envelope for Idempotency-Key replays (in the given transaction). */
  complete?: (sql: Tx, body: unknown) => Promise<void>;
}

/**
 * Runs an action's phases: handler in the first transaction, then the call with no
 * transaction, then record in a second one. Returns the final answer (a BinaryAnswer
 * included); throws the error to answer. A FailedAfterRecord's record commits, then its
 * error is thrown.
 */
async function runPhases(action: Action, ctx: PhaseContext): Promise<unknown> {
  const { principal } = ctx;
  // Answers that cannot be replayed (bytes, errors) are not stored.
  const store = async (sql: Tx, answer: unknown) => {
    if (ctx.complete && !(answer instanceof BinaryAnswer || answer instanceof FailedAfterRecord)) {
      await ctx.complete(sql, envelope(answer));
    }
  };
  const prepared = await withClaims(principal.claims, async (tx) => {
    const result = await action.handler({ ...ctx, tx });
    if (!action.call) await store(tx, result);
    return result;
  });
  if (!action.call) return prepared;

  let outcome: CallOutcome<unknown>;
  try {
    outcome = { ok: true, value: await action.call(prepared, ctx) };
  } catch (error) {
    if (!action.record) throw error;
    outcome = { ok: false, error };
  }
  let answer: unknown;
  if (action.record) {
    answer = await withClaims(principal.claims, async (tx) => {
      const recorded = await action.record!(outcome, { ...ctx, tx, prepared });
      await store(tx, recorded);
      return recorded;
    });
  } else {
    answer = (outcome as { value: unknown }).value;
    await store(serviceSql(), answer);
  }
  if (answer instanceof FailedAfterRecord) throw answer.error;
  return answer;
}

export interface GroupOptions {
  bodyLimit?: number;
  /** Routes of the group that do not follow the action dispatch (e.g. /auth/token). */
  extraRoutes?: (app: Hono) => void;
}

/** The app of one endpoint group, serving `/<group>` and `/<group>/<suffix>`. */
export function createGroupApp(group: string, actions: Action[], options: GroupOptions = {}) {
  assertScopeGroup(group, actions);
  const app = newApp(`/${group}`);
  options.extraRoutes?.(app);
  const findAction = actionResolver(actions);

  const dispatch = async (c: Context) => {
    const principal = c.get("principal");
    const body = envelopeOf(c.get("body"));
    const action = findAction(body.action, c.req.param("suffix"));
    checkAccess(group, action, principal);
    const rawData = body.data ?? {};

    if (action.replayable === false && c.req.header("idempotency-key") !== undefined) {
      throw new ApiError(
        "VALIDATION_ERROR",
        `Idempotency-Key is not supported by '${action.name}'.`,
        {
          details: { field: "Idempotency-Key", constraint: "unsupported" },
        },
      );
    }
    // Reads ignore the header: nothing to protect, and a stored answer would be stale.
    const idempotency = honoursIdempotencyKey(action)
      ? await claimIdempotencyKey(c, principal, { group, action: action.name, data: rawData })
      : { kind: "none" as const };
    if (idempotency.kind === "replay") {
      return c.json(idempotency.body as never, idempotency.status as never, {
        "Idempotent-Replayed": "true",
      });
    }
    const stream = new AnswerStream();
    const run = async () => {
      try {
        return await runPhases(action, {
          data: validate(action.input, rawData),
          principal,
          requestId: c.get("requestId"),
          signal: AbortSignal.any([c.req.raw.signal, stream.cancelled]),
          emit: stream.emit,
          // Stored in the same transaction as the last change, or right after the call.
          complete: idempotency.kind === "claimed"
            ? (sql, body) => idempotency.claim.complete(sql, 200, body)
            : undefined,
        });
      } catch (error) {
        if (idempotency.kind === "claimed") await idempotency.claim.release();
        throw error;
      }
    };
    // A JSON answer when the phases end first; a stream when the call emits first.
    const phases = run();
    const answer = await Promise.race([phases, stream.started]);
    if (answer === STREAMING) {
      // The call emitted: the rest of the answer is a stream, its end the final answer.
      const final = phases.then(
        (result) => ({ event: "result" as const, data: envelope(result) }),
        (error) => ({ event: "error" as const, data: apiErrorOf(c, error).toBody() }),
      );
      return c.body(stream.body(final), 200, {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
      });
    }
    if (answer instanceof BinaryAnswer) {
      if (idempotency.kind === "claimed") await idempotency.claim.release();
      // Through the context, so the request id, CORS and rate-limit headers come along.
      return c.body(answer.bytes as Uint8Array<ArrayBuffer>, 200, {
        "Content-Type": answer.contentType,
        ...(answer.filename
          ? { "Content-Disposition": `attachment; filename="${answer.filename}"` }
          : {}),
      });
    }
    return c.json(envelope(answer), 200);
  };

  const pipeline = [
    jsonBody(options.bodyLimit ?? DEFAULT_BODY_LIMIT),
    authenticate(),
    rateLimit(),
  ] as const;
  app.post("/", ...pipeline, dispatch);
  app.post("/:suffix", ...pipeline, dispatch);
  app.all("*", (c) => {
    if (c.req.method === "POST") {
      throw new ApiError("RESOURCE_NOT_FOUND", `No endpoint at ${new URL(c.req.url).pathname}.`);
    }
    throw new ApiError(
      "METHOD_NOT_ALLOWED",
      `Use POST with a JSON body {action, data}; got ${c.req.method}.`,
      {
        headers: { Allow: "POST, OPTIONS" },
      },
    );
  });
  return app;
}
