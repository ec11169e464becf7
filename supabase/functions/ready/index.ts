import app from "../../../shared/platform/functions/ready.ts";

Deno.serve(app.fetch);
