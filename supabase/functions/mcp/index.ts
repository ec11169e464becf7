import app from "../../../shared/mcp/app.ts";

Deno.serve(app.fetch);
