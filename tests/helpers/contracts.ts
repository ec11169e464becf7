/**
 * The response contracts, checked on every answer a test gets through `api()`: a 2xx
 * answer's `data` must validate against its action's `output` schema (strict objects, so an
 * undocumented field fails too), and every error answer against the error envelope. The
 * action is found the way the API finds it (body's `action`, else the path suffix), from
 * the one registry of groups (shared/domains.ts). Kept apart from stack.ts so it can be
 * tested without a stack.
 */
import { z } from "zod";
import { GROUPS, ROUTES } from "../../shared/domains.ts";
import { type Action, BinaryOutput } from "../../shared/platform/app.ts";
import { errorEnvelope, successEnvelope } from "../../shared/platform/openapi.ts";

export interface Answer {
  method: string;
  /** As given to `api()`: `contacts/create`, `auth/token?grant_type=password`. */
  path: string;
  /** The request body sent (its `action` names the action). */
  requestBody: unknown;
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when it was not JSON. */
  body: unknown;
}

export class ContractViolation extends Error {
  override name = "ContractViolation";
}

const PLATFORM_ONLY = new Set(["openapi"]);

/** The action a request to `/v1/<group>[/<suffix>]` runs, or undefined. */
export function actionFor(path: string, requestBody: unknown): Action | undefined {
  const [group, suffix, ...rest] = path.split("?")[0].replace(/^\/+/, "").split("/");
  const actions = GROUPS.find((g) => g.group === group)?.actions;
  if (!actions || rest.length > 0) return undefined;
  const named = (requestBody as { action?: unknown } | null)?.action;
  if (typeof named === "string") return actions.find((a) => a.name === named);
  if (suffix === undefined || suffix === "") return undefined;
  return actions.find((a) => (a.paths ?? [a.name]).includes(suffix));
}

/** The last `result` or `error` event of a text/event-stream answer: the final answer. */
function finalStreamEvent(text: string): { event: string; data: unknown } | undefined {
  let final: { event: string; data: unknown } | undefined;
  for (const frame of text.split("\n\n")) {
    const event = /^event: (.*)$/m.exec(frame)?.[1];
    const data = /^data: (.*)$/m.exec(frame)?.[1];
    if ((event === "result" || event === "error") && data !== undefined) {
      final = { event, data: JSON.parse(data) };
    }
  }
  return final;
}

function check(schema: z.ZodType, value: unknown, what: string, answer: Answer) {
  const parsed = schema.safeParse(value);
  if (parsed.success) return;
  const body = JSON.stringify(answer.body) ?? String(answer.body);
  throw new ContractViolation(
    `${what}: ${answer.method} /v1/${answer.path} answered ${answer.status} with a body its ` +
      `schema refuses:\n${z.prettifyError(parsed.error)}\nbody: ${
        body.length > 2000 ? `${body.slice(0, 2000)}…` : body
      }`,
  );
}

/** Throws a ContractViolation when the answer does not match what its route documents. */
export function checkAnswer(answer: Answer): void {
  const { method, status, headers, body } = answer;
  if (method === "OPTIONS" || method === "HEAD") return; // CORS preflights: no body
  const path = answer.path.split("?")[0].replace(/^\/+|\/+$/g, "");
  const contentType = headers.get("content-type") ?? "";

  if (status < 200 || status >= 300) {
    check(errorEnvelope, body, `error answer (${status})`, answer);
    return;
  }
  const route = ROUTES.find((r) => r.method.toUpperCase() === method && r.path === `/${path}`);
  if (route) {
    check(route.enveloped ? successEnvelope(route.output) : route.output, body, route.path, answer);
    return;
  }
  if (PLATFORM_ONLY.has(path.split("/")[0])) return; // the OpenAPI document itself

  const action = actionFor(path, answer.requestBody);
  const group = path.split("/")[0];
  if (!action) {
    throw new ContractViolation(
      `${method} /v1/${answer.path} answered ${status} but names no documented action ` +
        "(shared/domains.ts): every 2xx must belong to an action or a route with a schema.",
    );
  }
  const what = `${group}.${action.name}`;
  if (action.output instanceof BinaryOutput) {
    if (!contentType.startsWith(action.output.contentType)) {
      throw new ContractViolation(
        `${what}: answered Content-Type '${contentType}', its output is ${action.output.contentType}.`,
      );
    }
    return;
  }
  if (contentType.startsWith("text/event-stream")) {
    const final = finalStreamEvent(String(body));
    if (!final) throw new ContractViolation(`${what}: a stream without a final result or error.`);
    const schema = final.event === "result" ? successEnvelope(action.output) : errorEnvelope;
    check(schema, final.data, `${what} (stream's ${final.event})`, answer);
    return;
  }
  check(successEnvelope(action.output), body, what, answer);
}
