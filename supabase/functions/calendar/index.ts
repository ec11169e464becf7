import app from "../../../shared/calendar/app.ts";

Deno.serve(app.fetch);
