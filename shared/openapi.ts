/**
 * The OpenAPI 3.1 document of the public API, generated from the same action definitions
 * (zod schemas, scopes, path suffixes) and error table the runtime uses, so the two
 * cannot drift apart.
 */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Action } from "./app.ts";
import { ERROR_CODES, type ErrorCode } from "./errors.ts";
import { API_VERSION } from "./health.ts";

export interface DocumentedGroup {
  group: string;
  actions: Action[];
}

const errorBody = (codes: ErrorCode[]) =>
  z.object({
    success: z.literal(false),
    error: z.object({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  });

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
const WRITE_ERRORS = [...COMMON_ERRORS, 409, 422];

export function buildOpenApiDocument(groups: DocumentedGroup[], serverUrl: string) {
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
      const writes = action.scope === "write" || action.scope === "admin";
      registry.registerPath({
        method: "post",
        path: `/${group}/${suffix}`,
        tags: [group],
        operationId: `${group}.${action.name}`,
        summary: action.summary,
        description: [
          `Body \`{"action": "${action.name}", "data": {...}}\`; the path suffix is optional.`,
          action.scope === "any"
            ? "Any authenticated caller."
            : `Required scope: \`${action.scope}\`.`,
          action.usersOnly ? "Only a signed-in user's token; API keys are refused." : "",
          writes && action.replayable !== false ? "Accepts `Idempotency-Key`." : "",
        ].filter(Boolean).join(" "),
        security: action.usersOnly ? [{ Bearer: [] }] : [{ ApiKey: [] }, { Bearer: [] }],
        request: {
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
          200: {
            description: "Success",
            content: {
              "application/json": {
                schema: z.object({ success: z.literal(true), data: z.unknown() }),
              },
            },
          },
          ...errorResponses(writes ? WRITE_ERRORS : COMMON_ERRORS),
        },
      });
    }
  }
  for (const [path, summary] of [["/health", "Liveness"], ["/ready", "Readiness"]]) {
    registry.registerPath({
      method: "get",
      path,
      tags: ["health"],
      summary,
      responses: {
        200: { description: summary },
        ...(path === "/ready" ? errorResponses([503]) : {}),
      },
    });
  }
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: { title: "BiVelio API", version: API_VERSION },
    servers: [{ url: serverUrl }],
  });
}
