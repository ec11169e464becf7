import app from "../../../shared/platform/functions/worker.ts";

Deno.serve(app.fetch);
