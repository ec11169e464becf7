/**
 * The workflows group's own step types (set, condition, http_request, delay), and the
 * contract every step type follows; the registry of all of them, gathered from the
 * domains' step modules, is step-types.ts.
 *
 * A step type declares how its side effect is made safe, and the engine (engine.ts) commits
 * it accordingly, never by the type's name:
 * - "none": no side effect, the same result every time; written with the next commit.
 * - "transactional": a database change made in the transaction that records the step, so
 *   a retried step can never make it twice.
 * - "idempotency_key": a call to a provider that honours a key which is the same on every
 *   attempt (`idempotencyKey`: instance + step), so a repeat after a crash is dropped there.
 * - "intent": a call to a provider that does not deduplicate (WhatsApp, SMTP, Gemini): the
 *   engine commits an intent (attempt and a stable key) before the call and the result
 *   after it. A run that finds an intent without a result (the worker died in between)
 *   does not call again: the type's `reconcile` looks the result up at the provider, or
 *   the step fails with OUTCOME_UNKNOWN (never a second send).
 * A step can also park its instance instead of giving an output: `{ waitUntil }` (a
 * durable delay) or `{ waitForJob: {kind, payload} }` (the engine queues that job in the
 * step's commit; the job's result becomes the step's output, its failure the step's).
 * A type may name the scope a caller needs to put it in a workflow (`scope`).
 */
import type { Environment } from "../platform/environment.ts";
import { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { OutboundBlockedError, OutboundNetworkError } from "../platform/outbound/address-guard.ts";
import { userEndpoints } from "../platform/outbound/user-endpoints.ts";
import { clientFor } from "../platform/providers.ts";
import { KiB } from "../platform/json-size.ts";
import type { RequiredScope } from "../platform/principal.ts";
import { findUnstorable, storableText } from "../platform/storable-json.ts";

export class StepFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "StepFailure";
  }
}

/** What an `intent` step committed before its call: the same key on every look-up. */
export interface StepIntent {
  /** The step's attempt that made the call. */
  attempt: number;
  /** `<instance id>.<step id>.<attempt>`: the key to find the call at the provider. */
  key: string;
}

export interface StepContext<Config> {
  config: Config;
  /** `<instance id>.<step id>`: the same on every attempt of this step. */
  idempotencyKey: string;
  environment: Environment;
  /** This attempt of the step, from 1. */
  attempt: number;
  /** `transactional` steps only: the transaction that records the step. */
  tx: Tx;
  /** `intent` steps only: the intent committed before this call. */
  intent: StepIntent;
}

export type StepOutcome =
  | { output: unknown; goTo?: string }
  | { waitUntil: Date }
  | { waitForJob: { kind: string; payload: unknown } };

export type StepEffect = "none" | "transactional" | "idempotency_key" | "intent";

export interface StepType<Config = unknown> {
  effect: StepEffect;
  config: z.ZodType<Config>;
  /** The scope a caller needs to define a workflow with this step (beyond workflows:write). */
  scope?: RequiredScope;
  run(ctx: StepContext<Config>): Promise<StepOutcome> | StepOutcome;
  /**
   * `intent` steps: the run after a crash found this intent without a result. Return the
   * call's outcome as the provider knows it, or throw; without it the step fails with
   * OUTCOME_UNKNOWN.
   */
  reconcile?(ctx: StepContext<Config>): Promise<StepOutcome> | StepOutcome;
}

export const defineStep = <S extends z.ZodType>(step: StepType<z.output<S>> & { config: S }) =>
  step as unknown as StepType;

/** Where a condition goes: a later step's id, or "end". */
const target = z.string().min(1).max(64);

const conditionConfig = z.strictObject({
  value: z.unknown(),
  equals: z.unknown().optional(),
  not_equals: z.unknown().optional(),
  greater_than: z.number().optional(),
  less_than: z.number().optional(),
  contains: z.unknown().optional(),
  exists: z.boolean().optional(),
  then: target.optional(),
  else: target.optional(),
}).refine(
  (c) =>
    ["equals", "not_equals", "greater_than", "less_than", "contains", "exists"]
      .filter((op) => op in c).length === 1,
  { message: "exactly one of equals, not_equals, greater_than, less_than, contains, exists" },
);
export type ConditionConfig = z.output<typeof conditionConfig>;

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function conditionHolds(c: ConditionConfig): boolean {
  const value = c.value;
  if ("equals" in c) return sameJson(value, c.equals);
  if ("not_equals" in c) return !sameJson(value, c.not_equals);
  if (c.greater_than !== undefined) return typeof value === "number" && value > c.greater_than;
  if (c.less_than !== undefined) return typeof value === "number" && value < c.less_than;
  if ("contains" in c) {
    if (typeof value === "string") return value.includes(String(c.contains));
    if (Array.isArray(value)) return value.some((item) => sameJson(item, c.contains));
    return false;
  }
  return (value !== null && value !== undefined) === c.exists;
}

const HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

const httpRequestConfig = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).max(2048),
  method: z.enum(HTTP_METHODS).default("GET"),
  headers: z.record(z.string().min(1).max(100), z.string().max(4000)).default({}),
  /** A string is sent as it is; anything else as JSON. */
  body: z.unknown().optional(),
  timeout_ms: z.number().int().min(100).max(30_000).default(10_000),
});

/**
 * Bytes of an answer's body kept (the rest is cut off, `truncated`): leaves room under the
 * step output limit (INSTANCE_LIMITS.stepOutputBytes, 256 KiB) for the status and headers.
 */
const MAX_ANSWER_BODY_BYTES = 192 * KiB;

/** A status worth retrying: the receiver may succeed later. */
const retryableStatus = (status: number) => status >= 500 || status === 408 || status === 429;

/**
 * The response body as the step's output: JSON when it is and can be stored, else the text
 * with what cannot be stored (NUL, lone surrogates) replaced. An answer that could not be
 * stored would otherwise fail its commit after the request was sent.
 */
function parseBody(text: string, contentType: string | undefined) {
  if (contentType?.includes("json")) {
    try {
      const parsed = JSON.parse(text);
      if (!findUnstorable(parsed)) return parsed;
    } catch {
      // not JSON after all: keep the text
    }
  }
  return storableText(text);
}

const delayConfig = z.strictObject({
  seconds: z.number().int().min(1).max(30 * 24 * 3600).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
}).refine((c) => (c.seconds === undefined) !== (c.until === undefined), {
  message: "exactly one of seconds, until",
});

/** The workflow group's own step types (the registry is step-types.ts). */
export const WORKFLOW_STEP_TYPES: Record<string, StepType> = {
  set: defineStep({
    effect: "none",
    config: z.strictObject({ values: z.record(z.string().min(1).max(100), z.unknown()) }),
    run: ({ config }) => ({ output: config.values }),
  }),

  condition: defineStep({
    effect: "none",
    config: conditionConfig,
    run: ({ config }) => {
      const matched = conditionHolds(config);
      const goTo = matched ? config.then : config.else;
      return { output: { matched, next: goTo ?? null }, goTo };
    },
  }),

  http_request: defineStep({
    effect: "idempotency_key",
    config: httpRequestConfig,
    run: async ({ config, idempotencyKey, environment }) => {
      const headers: Record<string, string> = {
        "User-Agent": "BiVelio-Workflows/1.0",
        "Idempotency-Key": idempotencyKey,
        ...config.headers,
      };
      let body: string | undefined;
      if (config.body !== undefined && config.method !== "GET") {
        body = typeof config.body === "string" ? config.body : JSON.stringify(config.body);
        headers["Content-Type"] ??= typeof config.body === "string"
          ? "text/plain; charset=utf-8"
          : "application/json";
      }
      try {
        const response = await clientFor(userEndpoints, environment).send(
          { method: config.method, url: config.url, headers, body },
          {
            timeoutMs: config.timeout_ms,
            requireHttps: false,
            maxResponseBytes: MAX_ANSWER_BODY_BYTES,
          },
        );
        const output = {
          status: response.status,
          headers: response.headers,
          body: parseBody(response.body, response.headers["content-type"]),
          truncated: response.truncated,
          duration_ms: response.durationMs,
        };
        if (response.status >= 200 && response.status < 300) return { output };
        throw new StepFailure(
          "HTTP_STATUS",
          `${config.method} ${new URL(config.url).host} answered ${response.status}.`,
          retryableStatus(response.status),
          { response: output },
        );
      } catch (error) {
        if (error instanceof OutboundBlockedError) {
          throw new StepFailure("TARGET_NOT_ALLOWED", error.message, false);
        }
        if (error instanceof OutboundNetworkError) {
          throw new StepFailure("HTTP_NETWORK", error.message, true);
        }
        throw error;
      }
    },
  }),

  delay: defineStep({
    effect: "none",
    config: delayConfig,
    run: ({ config }) => ({
      waitUntil: config.until !== undefined
        ? new Date(config.until)
        : new Date(Date.now() + config.seconds! * 1000),
    }),
  }),
};
