import app from "../../../shared/workflows/app.ts";

Deno.serve(app.fetch);
