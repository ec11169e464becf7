import app from "../../../shared/cases/app.ts";

Deno.serve(app.fetch);
