import app from "../../../shared/messages/app.ts";

Deno.serve(app.fetch);
