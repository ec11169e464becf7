import { actions as apiKeys } from "../../api-keys/app.ts";
import { actions as auth } from "../../auth/app.ts";
import { actions as contacts } from "../../contacts/app.ts";
import { actions as webhooks } from "../../webhooks/app.ts";
import { actions as workflows } from "../../workflows/app.ts";
import { newApp } from "../app.ts";
import { ApiError } from "../errors.ts";
import { buildOpenApiDocument } from "../openapi.ts";

const groups = [
  { group: "auth", actions: auth },
  { group: "api-keys", actions: apiKeys },
  { group: "contacts", actions: contacts },
  { group: "workflows", actions: workflows },
  { group: "webhooks", actions: webhooks },
];

/** GET /v1/openapi: the OpenAPI 3.1 document, built once per instance. */
const app = newApp("/openapi");
let document: unknown;
app.get("/", (c) => {
  const base = Deno.env.get("BIVELIO_PUBLIC_URL") ?? `${new URL(c.req.url).origin}/v1`;
  document ??= buildOpenApiDocument(groups, base);
  return c.json(document);
});
app.all("*", () => {
  throw new ApiError("METHOD_NOT_ALLOWED", "Use GET.", { headers: { Allow: "GET" } });
});

export default app;
