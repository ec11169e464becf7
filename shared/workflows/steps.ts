/**
 * The step types a workflow can use: one entry per type, with the schema of its config
 * (after templates are rendered) and how it runs. Later groups add theirs here
 * (send_message, invoke_agent, create_invoice, create_event, mcp_tool, extract_document).
 *
 * How a type runs decides how the engine commits it (see engine.ts):
 * - "pure": no side effect, same result every time; it is written with the next commit.
 * - "transactional": its effect is a database change made in the same transaction that
 *   records the step, so a retried step can never do it twice.
 * - "external": it talks to another system; the request carries an idempotency key that
 *   is the same on every attempt (instance + step), so the receiver can drop repeats.
 * - "delay": durable waiting: the job is rescheduled, no worker sleeps.
 */
import type { Environment } from "../platform/environment.ts";
import { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { OutboundBlockedError, OutboundNetworkError } from "../platform/outbound/address-guard.ts";
import { outboundFetch } from "../platform/outbound/fetch.ts";
import { KiB } from "../platform/json-size.ts";
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

export interface StepContext<Config> {
  config: Config;
  /** `<instance id>.<step id>`: the same on every attempt of this step. */
  idempotencyKey: string;
  environment: Environment;
  /** Transactional steps only: the transaction that records the step. */
  tx: Tx;
}

export type StepOutcome =
  | { output: unknown; goTo?: string }
  | { waitUntil: Date };

export interface StepType<Config = unknown> {
  mode: "pure" | "transactional" | "external" | "delay";
  config: z.ZodType<Config>;
  run(ctx: StepContext<Config>): Promise<StepOutcome> | StepOutcome;
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
    mode: "pure",
    config: z.strictObject({ values: z.record(z.string().min(1).max(100), z.unknown()) }),
    run: ({ config }) => ({ output: config.values }),
  }),

  condition: defineStep({
    mode: "pure",
    config: conditionConfig,
    run: ({ config }) => {
      const matched = conditionHolds(config);
      const goTo = matched ? config.then : config.else;
      return { output: { matched, next: goTo ?? null }, goTo };
    },
  }),

  http_request: defineStep({
    mode: "external",
    config: httpRequestConfig,
    run: async ({ config, idempotencyKey }) => {
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
        const response = await outboundFetch(
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
    mode: "delay",
    config: delayConfig,
    run: ({ config }) => ({
      waitUntil: config.until !== undefined
        ? new Date(config.until)
        : new Date(Date.now() + config.seconds! * 1000),
    }),
  }),
};
