/**
 * The OpenAPI 3.1 document of the public API, generated from the same action definitions
 * (zod schemas of input and output, scopes, path suffixes) and error table the runtime
 * uses, so the two cannot drift apart. Response schemas with a `.meta({id})` become named
 * components (`#/components/schemas/Contact`), which SDK generators turn into types.
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { type Action, BinaryOutput, honoursIdempotencyKey, requiredScope } from "./app.ts";
import { ERROR_CODES, type ErrorCode } from "./errors.ts";
import { API_VERSION } from "./health.ts";
import { acceptedScopes, type RequiredScope } from "./principal.ts";

export interface DocumentedGroup {
  group: string;
  actions: Action[];
}

/** A route outside the action dispatch (`/auth/token`, `/health`), for the document. */
export interface DocumentedRoute {
  method: "get" | "post";
  /** Under the server URL (`/v1`): `/auth/token`. */
  path: string;
  tags: string[];
  summary: string;
  description?: string;
  /** Query parameters and their allowed values (required). */
  query?: Record<string, string[]>;
  /** Required request headers. */
  headers?: string[];
  /** The JSON body: one schema, or the ones it may be (by a query parameter). */
  body?: z.ZodType[];
  /** The 200 answer: its `data` when `enveloped`, else the whole body. */
  output: z.ZodType;
  enveloped: boolean;
  /** HTTP statuses of its error answers. */
  errors: number[];
}

const errorBody = (codes: ErrorCode[]) =>
  z.strictObject({
    success: z.literal(false),
    error: z.strictObject({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
      /** 429: seconds to wait (also the Retry-After header). */
      retry_after: z.int().min(0).optional(),
    }),
  });

/** Every error answer, whatever its status: `{success: false, error: {code, message, …}}`. */
export const errorEnvelope = errorBody(Object.keys(ERROR_CODES) as ErrorCode[]);

/** A successful answer: `{success: true, data}` with the action's output as `data`. */
export const successEnvelope = <T extends z.ZodType>(data: T) =>
  z.strictObject({ success: z.literal(true), data });

/**
 * A streamed answer (`text/event-stream`): each item is one server-sent event, `event: <name>`
 * and `data: <JSON>`, in the order the action declares, then `result` or `error`.
 */
function eventStream(events: Record<string, z.ZodType>, output: z.ZodType) {
  const all: Record<string, z.ZodType> = {
    ...events,
    result: successEnvelope(output),
    error: errorEnvelope,
  };
  const items: z.ZodType[] = Object.entries(all).map(([name, data]) =>
    z.object({ event: z.literal(name), data })
  );
  return {
    schema: z.union(items as [z.ZodType, z.ZodType, ...z.ZodType[]]).openapi({
      description: "One server-sent event per item (`event:` its name, `data:` its JSON): " +
        `${Object.keys(events).join(", ")}, then result (the success envelope) or error.`,
    }),
  };
}

/** The 200 response of an action: the envelope around its output, or its bytes. */
function successResponse(output: Action["output"], events?: Action["events"]) {
  if (events && !(output instanceof BinaryOutput)) {
    return {
      description: "Success: JSON, or server-sent events when the request asked to stream",
      content: {
        "application/json": { schema: successEnvelope(output) },
        "text/event-stream": eventStream(events, output),
      },
    };
  }
  if (output instanceof BinaryOutput) {
    return {
      description: `The file (${output.contentType}), not the JSON envelope`,
      content: {
        [output.contentType]: { schema: { type: "string" as const, format: "binary" } },
      },
    };
  }
  return {
    description: "Success",
    content: { "application/json": { schema: successEnvelope(output) } },
  };
}

/** Each HTTP status with every error code that can carry it, from the one table. */
function errorResponses(statuses: number[]) {
  const responses: Record<
    string,
    { description: string; content: Record<string, { schema: z.ZodType }> }
  > = {};
  for (const status of statuses) {
    const codes = (Object.keys(ERROR_CODES) as ErrorCode[]).filter((code) =>
      ERROR_CODES[code] === status
    );
    responses[String(status)] = {
      description: codes.join(", "),
      content: { "application/json": { schema: errorBody(codes) } },
    };
  }
  return responses;
}

const COMMON_ERRORS = [400, 401, 403, 404, 413, 429, 500];
/** Idempotency-Key's 409 (in use) and 422 (reused), and the state conflicts of changes. */
const MUTATING_ERRORS = [...COMMON_ERRORS, 409, 422];

/** The sentence of an action's description that says which scopes allow it. */
function scopeSentence(required: RequiredScope | null) {
  if (!required) return "Any authenticated caller.";
  const quoted = (scopes: string[]) => scopes.map((s) => `\`${s}\``).join(", ");
  const [least, ...higher] = acceptedScopes(required);
  if (required.group === null) {
    return `Required scope: \`${least}\`${higher.length ? ` (or ${quoted(higher)})` : ""}.`;
  }
  // acceptedScopes lists the group's scope, then the broad one, for each level upwards.
  const [broad, ...rest] = higher;
  return `Required scope: \`${least}\` or the broad \`${broad}\`` +
    (rest.length ? ` (a higher level also allows it: ${quoted(rest)}).` : ".");
}

/**
 * OpenAPI 3.1 lets non-OAuth schemes list role names: one requirement per scope that
 * allows the action, so any one of them is enough.
 */
function securityOf(action: Action, required: RequiredScope | null) {
  const scopes = required ? acceptedScopes(required) : [];
  const schemes = action.usersOnly ? ["Bearer"] : ["ApiKey", "Bearer"];
  if (scopes.length === 0) return schemes.map((scheme) => ({ [scheme]: [] }));
  return schemes.flatMap((scheme) => scopes.map((scope) => ({ [scheme]: [scope] })));
}

export function buildOpenApiDocument(
  groups: DocumentedGroup[],
  routes: DocumentedRoute[],
  serverUrl: string,
) {
  const app = new OpenAPIHono();
  const registry = app.openAPIRegistry;
  registry.registerComponent("securitySchemes", "ApiKey", {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
  });
  registry.registerComponent("securitySchemes", "Bearer", {
    type: "http",
    scheme: "bearer",
    description: "A user's Supabase Auth access token, or an API key",
  });

  for (const { group, actions } of groups) {
    for (const action of actions) {
      const suffix = (action.paths ?? [action.name])[0];
      const required = requiredScope(group, action);
      const idempotent = honoursIdempotencyKey(action);
      registry.registerPath({
        method: "post",
        path: `/${group}/${suffix}`,
        tags: [group],
        operationId: `${group}.${action.name}`,
        summary: action.summary,
        description: [
          `Body \`{"action": "${action.name}", "data": {...}}\`; the path suffix is optional.`,
          scopeSentence(required),
          action.usersOnly ? "Only a signed-in user's token; API keys are refused." : "",
          idempotent ? "Accepts `Idempotency-Key`." : "",
        ].filter(Boolean).join(" "),
        // The least scopes that allow it, a group's and the broad one (higher levels also do).
        ...(required ? { "x-required-scopes": acceptedScopes(required).slice(0, 2) } : {}),
        "x-mutates": action.mutates,
        security: securityOf(action, required),
        request: {
          ...(idempotent
            ? {
              headers: z.object({
                "Idempotency-Key": z.string().min(1).max(255).optional().openapi({
                  description:
                    "Replays the first answer to the same request within 24 h (1-255 visible ASCII)",
                }),
              }),
            }
            : {}),
          body: {
            required: true,
            content: {
              "application/json": {
                schema: z.object({ action: z.literal(action.name), data: action.input.optional() }),
              },
            },
          },
        },
        responses: {
          200: successResponse(action.output, action.events),
          ...errorResponses(action.mutates ? MUTATING_ERRORS : COMMON_ERRORS),
        },
      });
    }
  }
  for (const route of routes) {
    registry.registerPath({
      method: route.method,
      path: route.path,
      tags: route.tags,
      operationId: route.path.slice(1).replaceAll("/", "."),
      summary: route.summary,
      description: route.description,
      request: {
        ...(route.query
          ? {
            query: z.object(
              Object.fromEntries(
                Object.entries(route.query).map(([name, values]) => [
                  name,
                  z.enum(values as [string, ...string[]]),
                ]),
              ),
            ),
          }
          : {}),
        ...(route.headers
          ? { headers: z.object(Object.fromEntries(route.headers.map((h) => [h, z.string()]))) }
          : {}),
        ...(route.body
          ? {
            body: {
              required: true,
              content: {
                "application/json": {
                  schema: route.body.length === 1 ? route.body[0] : z.union(route.body),
                },
              },
            },
          }
          : {}),
      },
      responses: {
        200: {
          description: route.summary,
          content: {
            "application/json": {
              schema: route.enveloped ? successEnvelope(route.output) : route.output,
            },
          },
        },
        ...errorResponses(route.errors),
      },
    });
  }
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: { title: "BiVelio API", version: API_VERSION },
    servers: [{ url: serverUrl }],
  });
}
