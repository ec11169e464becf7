/**
 * What each AI operation costs in credits: the spec's "AI Model" table, and the rule that
 * prices an agent invocation by its input. Pure, so `estimate` and the operations that
 * charge give the same number.
 */
import { jsonSize, KiB } from "../platform/json-size.ts";

/** The operations that spend credits (the ledger's debits). */
export const CHARGEABLE_OPERATIONS = [
  "agent_invoke",
  "ocr_extraction",
  "document_classification",
  "workflow_generation",
  "form_generation",
] as const;
export type ChargeableOperation = typeof CHARGEABLE_OPERATIONS[number];

/** Every operation a ledger row can record: debits, and what gives credits back. */
export const LEDGER_OPERATIONS = [
  ...CHARGEABLE_OPERATIONS,
  "refund",
  "monthly_reset",
  "grant",
] as const;
export type LedgerOperation = typeof LEDGER_OPERATIONS[number];

/** The spec's fixed prices. */
export const FIXED_COSTS = {
  ocr_extraction: 3,
  document_classification: 2,
  workflow_generation: 5,
  form_generation: 3,
} as const satisfies Record<Exclude<ChargeableOperation, "agent_invoke">, number>;

/**
 * An agent invocation by the size of its input as JSON (UTF-8 bytes, `context` included,
 * as it is sent to the model): the first tier whose limit the input fits is its price.
 * "Short text" is 2 KiB; above 128 KiB it is 5.
 */
export const AGENT_INPUT_TIERS = [
  { maxBytes: 2 * KiB, credits: 1 },
  { maxBytes: 8 * KiB, credits: 2 },
  { maxBytes: 32 * KiB, credits: 3 },
  { maxBytes: 128 * KiB, credits: 4 },
] as const;
export const AGENT_MAX_CREDITS = 5;

/**
 * "With context" (the spec's 2-5 row): an input whose `context` member alone is larger
 * than this costs at least 2. A small context (the spec's example: a client id and a plan)
 * still counts as short text, as the spec's own example charges 1 for it.
 */
export const AGENT_CONTEXT_BYTES = 512;

function agentInvokeCost(input: unknown): number {
  const last = AGENT_INPUT_TIERS[AGENT_INPUT_TIERS.length - 1].maxBytes;
  // Measured only up to the last tier: anything bigger costs the most.
  const bytes = jsonSize(input ?? null, last);
  const tier = AGENT_INPUT_TIERS.find((t) => bytes <= t.maxBytes);
  const bySize = tier?.credits ?? AGENT_MAX_CREDITS;
  const context = typeof input === "object" && input !== null && !Array.isArray(input)
    ? (input as Record<string, unknown>).context
    : undefined;
  const withContext = context !== undefined && jsonSize(context, AGENT_CONTEXT_BYTES) >
      AGENT_CONTEXT_BYTES;
  return withContext ? Math.max(bySize, 2) : bySize;
}

/** The credits `operation` costs; `input` matters only for agent invocations. */
export function creditCost(operation: ChargeableOperation, input?: unknown): number {
  return operation === "agent_invoke" ? agentInvokeCost(input) : FIXED_COSTS[operation];
}
