import app from "../../../shared/webhooks/app.ts";

Deno.serve(app.fetch);
