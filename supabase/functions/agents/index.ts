import app from "../../../shared/agents/app.ts";

Deno.serve(app.fetch);
