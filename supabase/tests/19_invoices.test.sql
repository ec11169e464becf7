-- Invoices in the database (migration 20261201001400): row-level security of invoices and
-- their lines by organization and environment, the API role's grants, numbering per
-- organization, environment and year (consecutive, no gap after a rollback, never reused:
-- a number once given stays), exact money (numeric), the check constraints, the foreign
-- keys that keep a line and a client within the invoice's tenant, and the hourly pg_cron
-- job that marks pending invoices past their due date overdue.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(54);

\ir _helpers.psql
\ir _tenant_isolation.psql

-- Fixtures (as the superuser, which bypasses RLS).
insert into public.organizations (id, name) values
  ('org_inv_a', 'Invoices Org A'),
  ('org_inv_b', 'Invoices Org B');
insert into public.contacts (id, org_id, environment, type, name) values
  ('ct_inv_a', 'org_inv_a', 'live', 'company', 'Client A'),
  ('ct_inv_b', 'org_inv_b', 'live', 'company', 'Client B');
insert into public.invoices (id, org_id, environment, type, number, client_name, currency,
    issue_date, due_date, subtotal, tax, total) values
  ('inv_a_live', 'org_inv_a', 'live', 'issued', 'F-1', 'C', 'EUR', '2026-01-10', '2026-02-10', 100, 21, 121),
  ('inv_a_test', 'org_inv_a', 'test', 'issued', 'F-1', 'C', 'EUR', '2026-01-10', '2026-02-10', 100, 21, 121),
  ('inv_b_live', 'org_inv_b', 'live', 'issued', 'F-1', 'C', 'EUR', '2026-01-10', '2026-02-10', 100, 21, 121);
insert into public.invoice_lines (invoice_id, position, org_id, environment, description,
    quantity, unit_price, tax_rate, subtotal, tax, total) values
  ('inv_a_live', 0, 'org_inv_a', 'live', 'Work', 1, 100, 21, 100, 21, 121),
  ('inv_a_test', 0, 'org_inv_a', 'test', 'Work', 1, 100, 21, 100, 21, 121),
  ('inv_b_live', 0, 'org_inv_b', 'live', 'Work', 1, 100, 21, 100, 21, 121);

-- ---------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------
select table_privs_are('public', 'invoices', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete invoices (no truncate)');
select table_privs_are('public', 'invoice_lines', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete invoice lines (no truncate)');
select is_empty(
  $$select t, r from unnest(array['public.invoices', 'public.invoice_lines',
      'private.invoice_counters']) t, unnest(array['anon', 'authenticated']) r
    where has_table_privilege(r, t, 'select, insert, update, delete, truncate, references, trigger')
      and not (r = 'authenticated' and t like 'public.%')$$,
  'anon has no privilege on invoices; nobody but the owner reaches the numbering counters'
);
select is_empty(
  $$select f, r from unnest(array['private.keep_invoice_number()',
      'private.mark_overdue_invoices(date)']::regprocedure[]) f,
    unnest(array['anon', 'authenticated', 'service_role']) r
    where has_function_privilege(r, f, 'execute')$$,
  'the number trigger and the overdue job are executable by neither PUBLIC, anon, authenticated nor service_role'
);
select results_eq(
  $$select r, has_function_privilege(r, 'private.next_invoice_number(int)', 'execute')
    from unnest(array['anon', 'authenticated', 'service_role']) r$$,
  $$values ('anon', false), ('authenticated', true), ('service_role', true)$$,
  'the numbering is executable by the API roles only, not by anon'
);

-- ---------------------------------------------------------------------------------------
-- Row-level security as org A, live
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_inv_a","environment":"live"}';

select pg_temp.tenant_isolation('public.invoices', 'id', 'inv_a_live', 'inv_a_test',
  'inv_b_live', $$notes = 'x'$$, true);
select pg_temp.tenant_isolation('public.invoice_lines', $$invoice_id || '/' || position$$,
  'inv_a_live/0', 'inv_a_test/0', 'inv_b_live/0', $$description = 'x'$$, true);

select throws_ok(
  $$insert into invoices (org_id, type, client_name, currency, issue_date, due_date, subtotal,
      tax, total) values ('org_inv_b', 'received', 'C', 'EUR', '2026-01-01', '2026-01-01', 0, 0, 0)$$,
  '42501', null, 'an invoice cannot be written into another organization');
select throws_ok(
  $$insert into invoices (environment, type, client_name, currency, issue_date, due_date,
      subtotal, tax, total) values ('test', 'received', 'C', 'EUR', '2026-01-01', '2026-01-01', 0, 0, 0)$$,
  '42501', null, 'a live caller cannot write a sandbox invoice');
select throws_ok(
  $$insert into invoice_lines (invoice_id, position, org_id, description, quantity, unit_price,
      tax_rate, subtotal, tax, total) values ('inv_b_live', 1, 'org_inv_b', 'x', 1, 0, 0, 0, 0, 0)$$,
  '42501', null, 'a line cannot be written into another organization');
select throws_ok(
  $$insert into invoice_lines (invoice_id, position, description, quantity, unit_price,
      tax_rate, subtotal, tax, total) values ('inv_b_live', 1, 'x', 1, 0, 0, 0, 0, 0)$$,
  '23503', null, 'a line cannot belong to another organization''s invoice');
select throws_ok(
  $$insert into invoice_lines (invoice_id, position, description, quantity, unit_price,
      tax_rate, subtotal, tax, total) values ('inv_a_test', 1, 'x', 1, 0, 0, 0, 0, 0)$$,
  '23503', null, 'a live line cannot belong to a sandbox invoice');
select throws_ok(
  $$insert into invoices (type, client_id, client_name, currency, issue_date, due_date,
      subtotal, tax, total) values ('received', 'ct_inv_b', 'C', 'EUR', '2026-01-01', '2026-01-01', 0, 0, 0)$$,
  '23503', null, 'an invoice''s client cannot be another organization''s contact');
select lives_ok(
  $$insert into invoices (type, client_id, client_name, currency, issue_date, due_date,
      subtotal, tax, total) values ('received', 'ct_inv_a', 'C', 'EUR', '2026-01-01', '2026-01-01', 0, 0, 0)$$,
  'an invoice''s client is a contact of its organization');

-- ---------------------------------------------------------------------------------------
-- Numbering
-- ---------------------------------------------------------------------------------------
select is(private.next_invoice_number(2026), 'INV-2026-001', 'the first number of a year is 001');
select is(private.next_invoice_number(2026), 'INV-2026-002', 'the next one follows');
-- A create that rolls back gives its number back.
do $$
begin
  perform private.next_invoice_number(2026);
  raise exception 'rolled back';
exception when raise_exception then null;
end
$$;
select is(private.next_invoice_number(2026), 'INV-2026-003',
  'a rolled-back number is given again (no gap)');
select is(private.next_invoice_number(2027), 'INV-2027-001', 'each year counts from 001');
select throws_ok(
  $$select * from private.invoice_counters$$, '42501', null,
  'the API role cannot read the counters');
select throws_ok(
  $$update private.invoice_counters set last_number = 0$$, '42501', null,
  'the API role cannot wind a counter back');

select lives_ok(
  $$insert into invoices (id, type, number, client_name, currency, issue_date, due_date,
      subtotal, tax, total) values ('inv_a_1', 'issued', 'INV-2026-001', 'C', 'EUR',
      '2026-03-01', '2026-03-31', 0, 0, 0)$$,
  'an issued invoice takes its number');
select throws_ok(
  $$insert into invoices (type, number, client_name, currency, issue_date, due_date,
      subtotal, tax, total) values ('issued', 'INV-2026-001', 'C', 'EUR', '2026-03-01',
      '2026-03-31', 0, 0, 0)$$,
  '23505', null, 'an issued number exists once per organization and environment');
select lives_ok(
  $$insert into invoices (type, number, client_name, currency, issue_date, due_date,
      subtotal, tax, total) values ('received', 'INV-2026-001', 'C', 'EUR', '2026-03-01',
      '2026-03-31', 0, 0, 0)$$,
  'a supplier''s invoice may carry the same number');
select lives_ok(
  $$update invoices set status = 'cancelled', cancelled_at = now() where id = 'inv_a_1'$$,
  'an invoice is cancelled');
select throws_ok(
  $$update invoices set number = null where id = 'inv_a_1'$$,
  '23514', null, 'a cancelled invoice keeps its number (it cannot be cleared)');
select throws_ok(
  $$update invoices set number = 'INV-2026-099' where id = 'inv_a_1'$$,
  '23514', null, 'a number, once given, is never changed');
select throws_ok(
  $$update invoices set type = 'received' where id = 'inv_a_1'$$,
  '23514', null, 'an invoice keeps its type');
select is(private.next_invoice_number(2026), 'INV-2026-004',
  'numbering goes on after a cancel: the cancelled number is never given again');

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_inv_a","environment":"test"}';
select is(private.next_invoice_number(2026), 'INV-2026-001', 'the sandbox counts on its own');
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_inv_b","environment":"live"}';
select is(private.next_invoice_number(2026), 'INV-2026-001', 'another organization counts on its own');
set local request.jwt.claims = '{"role":"authenticated","environment":"live"}';
select throws_ok(
  $$select private.next_invoice_number(2026)$$, '42501', null,
  'no number without an organization in the claims');
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_inv_a","environment":"live"}';

-- ---------------------------------------------------------------------------------------
-- Money and check constraints
-- ---------------------------------------------------------------------------------------
select lives_ok(
  $$insert into invoices (id, type, client_name, currency, issue_date, due_date, subtotal,
      tax, total) values ('inv_a_cents', 'received', 'C', 'EUR', '2026-03-01', '2026-03-01',
      0.1, 0.2, 0.3)$$,
  'a total of 0.1 + 0.2 is exactly 0.3 (no binary floats)');
select lives_ok(
  $$insert into invoice_lines (invoice_id, position, description, quantity, unit_price,
      tax_rate, subtotal, tax, total) values ('inv_a_cents', 0, 'Three at 0.1', 3, 0.1, 21,
      0.3, 0.063, 0.363)$$,
  'a line of 3 × 0.1 at 21 %: 0.3 + 0.063 = 0.363');
select results_eq(
  $$select quantity * unit_price, subtotal * tax_rate / 100, subtotal + tax
    from invoice_lines where invoice_id = 'inv_a_cents'$$,
  $$values (0.3::numeric, 0.063::numeric, 0.363::numeric)$$,
  'a line''s amounts are exact: 3 × 0.1 = 0.3, 21 % of it 0.063'
);
select lives_ok(
  $$insert into invoices (id, type, client_name, currency, issue_date, due_date, subtotal,
      tax, total) values ('inv_a_large', 'received', 'C', 'EUR', '2026-03-01', '2026-03-01',
      12345678901234567.89, 0.01, 12345678901234567.90)$$,
  'large amounts add up to the cent');
select is((select total::text from invoices where id = 'inv_a_large'), '12345678901234567.90',
  'a large amount is stored to the cent');
select throws_ok(
  $$insert into invoices (type, client_name, currency, issue_date, due_date, subtotal, tax,
      total) values ('received', 'C', 'EUR', '2026-03-01', '2026-03-01', 100, 21, 120.99)$$,
  '23514', null, 'an invoice''s total is its subtotal plus its tax');
select throws_ok(
  $$insert into invoice_lines (invoice_id, position, description, quantity, unit_price,
      tax_rate, subtotal, tax, total) values ('inv_a_cents', 1, 'x', 1, 1, 21, 1, 0.21, 1.2)$$,
  '23514', null, 'a line''s total is its subtotal plus its tax');
select throws_ok(
  $$insert into invoices (type, client_name, currency, issue_date, due_date, subtotal, tax,
      total) values ('issued', 'C', 'EUR', '2026-03-01', '2026-03-01', 0, 0, 0)$$,
  '23514', null, 'an issued invoice has a number');
select throws_ok(
  $$insert into invoices (type, client_name, currency, issue_date, due_date, subtotal, tax,
      total) values ('received', 'C', 'EUR', '2026-03-02', '2026-03-01', 0, 0, 0)$$,
  '23514', null, 'the due date is not before the issue date');
select throws_ok(
  $$insert into invoices (type, client_name, currency, issue_date, due_date, subtotal, tax,
      total) values ('received', 'C', 'eur', '2026-03-01', '2026-03-01', 0, 0, 0)$$,
  '23514', null, 'the currency is an ISO 4217 code');
select throws_ok(
  $$update invoices set status = 'sent' where id = 'inv_a_live'$$,
  '23514', null, 'an invoice''s status is draft, pending, paid, overdue or cancelled');
select throws_ok(
  $$update invoices set status = 'paid' where id = 'inv_a_live'$$,
  '23514', null, 'a paid invoice has its payment time');
select throws_ok(
  $$update invoice_lines set quantity = 0 where invoice_id = 'inv_a_cents'$$,
  '23514', null, 'a line''s quantity is positive');
select lives_ok($$delete from invoices where id = 'inv_a_cents'$$, 'an invoice is deleted');
select is_empty($$select 1 from invoice_lines where invoice_id = 'inv_a_cents'$$,
  'its lines go with it');

-- ---------------------------------------------------------------------------------------
-- Overdue (pg_cron, hourly)
-- ---------------------------------------------------------------------------------------
reset role;
insert into public.invoices (id, org_id, environment, type, number, status, paid_at,
    client_name, currency, issue_date, due_date, subtotal, tax, total, updated_at) values
  ('inv_due_past', 'org_inv_a', 'live', 'issued', 'D-1', 'pending', null, 'C', 'EUR',
   current_date - 40, current_date - 1, 0, 0, 0, now() - interval '1 day'),
  ('inv_due_today', 'org_inv_a', 'live', 'issued', 'D-2', 'pending', null, 'C', 'EUR',
   current_date - 40, current_date, 0, 0, 0, now() - interval '1 day'),
  ('inv_due_paid', 'org_inv_a', 'live', 'issued', 'D-3', 'paid', now(), 'C', 'EUR',
   current_date - 40, current_date - 1, 0, 0, 0, now() - interval '1 day'),
  ('inv_due_draft', 'org_inv_a', 'live', 'issued', 'D-4', 'draft', null, 'C', 'EUR',
   current_date - 40, current_date - 1, 0, 0, 0, now() - interval '1 day'),
  ('inv_due_b', 'org_inv_b', 'test', 'issued', 'D-1', 'pending', null, 'C', 'EUR',
   current_date - 40, current_date - 1, 0, 0, 0, now() - interval '1 day');
select results_eq(
  $$select schedule, command, active from cron.job where jobname = 'bivelio-mark-overdue-invoices'$$,
  $$values ('7 * * * *'::text, 'select private.mark_overdue_invoices()'::text, true)$$,
  'pg_cron marks overdue invoices every hour'
);
select ok(private.mark_overdue_invoices(current_date) >= 2, 'the job marks invoices');
select results_eq(
  $$select id, status, updated_at > now() - interval '1 minute' from public.invoices
    where id like 'inv\_due\_%' order by id$$,
  $$values ('inv_due_b'::text, 'overdue'::text, true), ('inv_due_draft', 'draft', false),
           ('inv_due_paid', 'paid', false), ('inv_due_past', 'overdue', true),
           ('inv_due_today', 'pending', false)$$,
  'pending invoices past their due date become overdue (in every tenant); due today, paid or draft ones stay'
);
update private.invoice_counters set last_number = 999
where org_id = 'org_inv_a' and environment = 'live' and year = 2027;
set local role authenticated;
select is(private.next_invoice_number(2027), 'INV-2027-1000', 'numbers grow past 999');

select * from finish();
rollback;
