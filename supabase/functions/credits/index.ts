import app from "../../../shared/credits/app.ts";

Deno.serve(app.fetch);
