import app from "../../../shared/api-keys/app.ts";

Deno.serve(app.fetch);
