import app from "../../../shared/documents/app.ts";

Deno.serve(app.fetch);
