import app from "../../../shared/integrations/app.ts";

Deno.serve(app.fetch);
