/**
 * Generation from a prompt (a workflow definition, a form definition): one three-phase
 * action shape for every kind, so each kind only says what it asks Gemini for and how its
 * answer is checked.
 *
 *   handler: insert the generation `running` and debit its credits in one transaction (402
 *            before Gemini when the balance cannot cover it);
 *   call:    Gemini with the kind's response schema, no transaction held;
 *   record:  check the answer as the kind's own create would; store it, or refund and
 *            answer 502 INTEGRATION_ERROR when Gemini failed or the answer does not pass.
 * Nothing generated is saved as a workflow or form: the answer is a draft for the caller to
 * review and create.
 */
import { z } from "zod";
import { DEFAULT_MODEL, gemini, GeminiError } from "../ai/gemini.ts";
import type { JsonSchema } from "../ai/json-schema.ts";
import { creditCost } from "../credits/costs.ts";
import { debitCredits, refundCredits } from "../credits/ledger.ts";
import { defineAction, FailedAfterRecord } from "../platform/app.ts";
import type { Tx } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";
import { prefixedId } from "../platform/ids.ts";
import { clientFor } from "../platform/providers.ts";
import { isoTimestamp } from "../platform/time.ts";

export const generateInput = z.strictObject({
  /** What to make, in the user's words. */
  prompt: z.string().trim().min(1).max(8000),
});

/** Thrown by a kind's check: the model's answer is not a valid definition. */
export class GeneratedDefinitionInvalid extends Error {}

export interface GenerationKind<Definition> {
  kind: "workflow" | "form";
  operation: "workflow_generation" | "form_generation";
  /** What Gemini is told to do (the system instruction). */
  instructions: string;
  /** The JSON schema of Gemini's answer. */
  responseJsonSchema: JsonSchema;
  /**
   * The answer as a definition the kind's create accepts, or GeneratedDefinitionInvalid
   * saying why not (run in the record transaction: checks may read the database).
   */
  check(tx: Tx, answer: unknown): Promise<Definition>;
  /** The answer's field holding the definition (`workflow`, `form`). */
  field: string;
  /** The definition's schema, for the answer's OpenAPI document and the tests. */
  definition: z.ZodType;
}

/** The answer of a generate action: the definition under the kind's field, and its cost. */
function generateOutput(kind: GenerationKind<unknown>) {
  return z.strictObject({
    generation_id: prefixedId("gen", "a generation"),
    [kind.field]: kind.definition,
    tokens_used: z.number().int().nonnegative(),
    credits_consumed: z.number().int().nonnegative(),
    generated_at: z.string(),
  });
}

/** The `generate` action of a kind (workflows/generate, forms/generate). */
export function generateAction<Definition>(kind: GenerationKind<Definition>) {
  return defineAction({
    name: "generate",
    summary: `Generate a ${kind.kind} definition from a prompt (a draft, not saved; ` +
      `${creditCost(kind.operation)} credits)`,
    scope: "write",
    mutates: true,
    input: generateInput,
    output: generateOutput(kind as GenerationKind<unknown>),
    handler: async ({ tx, data }) => {
      const [row] = await tx<{ id: string }[]>`
        insert into public.generations (kind, prompt) values (${kind.kind}, ${data.prompt})
        returning id
      `;
      const debit = await debitCredits(tx, {
        operation: kind.operation,
        amount: creditCost(kind.operation),
        reference: row.id,
      });
      await tx`update public.generations set credits = ${debit.credits} where id = ${row.id}`;
      return { id: row.id, credits: debit.credits };
    },
    call: (_prepared, { data, principal, signal }) =>
      clientFor(gemini, principal.environment).generateJson({
        model: DEFAULT_MODEL,
        instructions: kind.instructions,
        input: data.prompt,
        responseJsonSchema: kind.responseJsonSchema,
        temperature: 0.2,
        signal,
      }),
    record: async (outcome, { tx, prepared }) => {
      let failure: ApiError;
      if (outcome.ok) {
        const tokens = outcome.value.usage.totalTokens;
        try {
          const definition = await kind.check(tx, outcome.value.output);
          const [row] = await tx<{ completed_at: Date }[]>`
            update public.generations
            set status = 'completed', output = ${tx.json(definition as never)},
                tokens_used = ${tokens}, completed_at = now()
            where id = ${prepared.id}
            returning completed_at
          `;
          return {
            generation_id: prepared.id,
            [kind.field]: definition,
            tokens_used: tokens,
            credits_consumed: prepared.credits,
            generated_at: isoTimestamp(row.completed_at)!,
          } as never;
        } catch (error) {
          if (!(error instanceof GeneratedDefinitionInvalid)) throw error;
          failure = new ApiError(
            "INTEGRATION_ERROR",
            `The model's ${kind.kind} did not pass the checks a ${kind.kind} must pass: ` +
              `${error.message} Nothing was charged; try again or rephrase the prompt.`,
            { details: { provider: "gemini", reason: "invalid_definition" } },
          );
        }
      } else if (outcome.error instanceof GeminiError) {
        failure = outcome.error.toApiError();
      } else {
        throw outcome.error;
      }
      await refundCredits(tx, prepared.id);
      await tx`
        update public.generations
        set status = 'failed', credits = 0, completed_at = now(),
            error = ${tx.json({ code: failure.code, message: failure.message })}
        where id = ${prepared.id}
      `;
      return new FailedAfterRecord(failure);
    },
  });
}
