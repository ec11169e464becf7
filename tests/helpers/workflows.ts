/** Helpers for workflow tests: define, run and wait for workflows over the real API. */
import assert from "node:assert/strict";
import { api } from "./stack.ts";

export type Step = { id: string; type: string; config?: Record<string, unknown>; retry?: unknown };

/** Creates a workflow (manual, parallel unless said otherwise) and returns its id. */
export async function createWorkflow(key: string, fields: Record<string, unknown>) {
  const response = await api("workflows/create", {
    action: "create",
    data: { name: "Test workflow", ...fields },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data.id as string;
}

export async function execute(key: string, workflowId: string, input: unknown = {}, sync = false) {
  const response = await api("workflows/execute", {
    action: "execute",
    data: { workflow_id: workflowId, input, async: !sync },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data;
}

export async function getInstance(key: string, instanceId: string) {
  const response = await api("workflows/get_instance", {
    action: "get_instance",
    data: { instance_id: instanceId },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data;
}

const FINISHED = ["completed", "failed", "cancelled"];

/** Polls the instance until `done(instance)` (default: it ended) or the deadline. */
export async function waitForInstance(
  key: string,
  instanceId: string,
  // deno-lint-ignore no-explicit-any
  done: (instance: any) => boolean = (i) => FINISHED.includes(i.status),
  timeoutMs = 20_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const instance = await getInstance(key, instanceId);
    if (done(instance)) return instance;
    if (Date.now() > deadline) {
      throw new Error(`instance ${instanceId} did not get there: ${JSON.stringify(instance)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface Receiver {
  url: string;
  requests: { method: string; headers: Headers; body: string; at: number }[];
  close(): Promise<void>;
}

/** A local HTTP server that records requests and answers with `respond(n)` (n from 1). */
export function startReceiver(
  respond: (n: number) => Response = () => Response.json({ ok: true }),
) {
  const requests: Receiver["requests"] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    requests.push({
      method: req.method,
      headers: req.headers,
      body: await req.text(),
      at: Date.now(),
    });
    return respond(requests.length);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: () => server.shutdown(),
  } satisfies Receiver;
}
