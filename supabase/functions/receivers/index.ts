import app from "../../../shared/platform/functions/receivers.ts";

Deno.serve(app.fetch);
