import app from "../../../shared/invoices/app.ts";

Deno.serve(app.fetch);
