/**
 * A group app of probe actions for tests/action_phases_test.ts, run as its own process so
 * its database pool can be given ONE connection (BIVELIO_DB_POOL_SIZE=1): a request can then
 * only be served while no other request holds that connection. Prints `{"port": N}` once
 * listening. Env: SUPABASE_DB_URL, SUPABASE_URL, BIVELIO_JWT_SECRET, PROBE_PROVIDER_URL.
 */
import { z } from "zod";
import {
  BinaryAnswer,
  binaryOutput,
  createGroupApp,
  defineAction,
  FailedAfterRecord,
} from "../../shared/platform/app.ts";
import { ApiError } from "../../shared/platform/errors.ts";
import { emitEvent } from "../../shared/platform/events.ts";

const providerUrl = Deno.env.get("PROBE_PROVIDER_URL")!;
export const PROBE_PDF = new TextEncoder().encode("%PDF-1.4\n% a probe, not a real PDF\n");

const actions = [
  defineAction({
    name: "call_provider",
    scope: "any",
    mutates: true,
    input: z.strictObject({ label: z.string() }),
    output: z.strictObject({
      label: z.string(),
      read: z.number(),
      provider_said: z.string(),
      answer_id: z.uuid(),
    }),
    handler: async ({ tx, data }) => {
      const [{ read }] = await tx<{ read: number }[]>`select 1 as read`;
      return { label: data.label, read };
    },
    call: async (prepared, { signal }) => {
      const response = await fetch(`${providerUrl}/${prepared.label}`, { signal });
      const body = await response.text();
      if (!response.ok) throw new Error(`provider answered ${response.status}`);
      return body;
    },
    record: async (outcome, { tx, prepared }) => {
      // Recorded either way: the outbox shows what the record phase committed.
      await emitEvent(tx, "contact.updated", { probe: prepared.label, ok: outcome.ok });
      if (!outcome.ok) {
        return new FailedAfterRecord(new ApiError("INTEGRATION_ERROR", "The provider failed."));
      }
      return { ...prepared, provider_said: outcome.value, answer_id: crypto.randomUUID() };
    },
  }),
  defineAction({
    name: "read",
    scope: "any",
    mutates: false,
    input: z.strictObject({}),
    output: z.strictObject({ ok: z.boolean() }),
    handler: async ({ tx }) => {
      const [{ ok }] = await tx<{ ok: boolean }[]>`select true as ok`;
      return { ok };
    },
  }),
  defineAction({
    name: "pdf",
    scope: "any",
    mutates: false,
    input: z.strictObject({}),
    output: binaryOutput("application/pdf"),
    handler: () => Promise.resolve(new BinaryAnswer(PROBE_PDF, "application/pdf", "probe.pdf")),
  }),
];

if (import.meta.main) {
  const app = createGroupApp("probe", actions);
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(JSON.stringify({ port })),
  }, app.fetch);
}
