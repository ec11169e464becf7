import app from "../../../shared/platform/functions/openapi.ts";

Deno.serve(app.fetch);
