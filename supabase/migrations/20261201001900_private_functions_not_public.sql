-- Functions are executable by PUBLIC when created, and a per-schema default privilege cannot
-- take that away: the trigger functions the invoices and calendar migrations added
-- (keep_invoice_number, calendar_reminder_jobs) were. Revoked again for every function in
-- `private`, so only the explicit grants apply (supabase/tests/11 checks it).
revoke execute on all functions in schema private from public;
