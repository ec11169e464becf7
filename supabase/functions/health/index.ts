import app from "../../../shared/platform/functions/health.ts";

Deno.serve(app.fetch);
