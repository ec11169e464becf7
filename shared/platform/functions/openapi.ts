import { config } from "../config.ts";
import { GROUPS, ROUTES } from "../../domains.ts";
import { newApp } from "../app.ts";
import { ApiError } from "../errors.ts";
import { buildOpenApiDocument } from "../openapi.ts";

/** GET /v1/openapi: the OpenAPI 3.1 document, built once per instance. */
const app = newApp("/openapi");
let document: unknown;
app.get("/", (c) => {
  const base = config.publicUrl ?? `${new URL(c.req.url).origin}/v1`;
  document ??= buildOpenApiDocument(GROUPS, ROUTES, base);
  return c.json(document);
});
app.all("*", () => {
  throw new ApiError("METHOD_NOT_ALLOWED", "Use GET.", { headers: { Allow: "GET" } });
});

export default app;
