import app from "../../../shared/auth/app.ts";

Deno.serve(app.fetch);
