import app from "../../../shared/forms/app.ts";

Deno.serve(app.fetch);
