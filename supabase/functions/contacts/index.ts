import app from "../../../shared/contacts/app.ts";

Deno.serve(app.fetch);
