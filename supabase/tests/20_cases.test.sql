-- Cases in the database (migrations 20261201001500 and 20261202000200): row-level security of
-- cases and their links by organization and environment, the API role's grants, the check
-- constraints, and what keeps a case within its tenant: its contact, its links' case and the
-- records its links point at are of the same organization and environment.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(32);

\ir _helpers.psql
\ir _tenant_isolation.psql

-- Fixtures (as the superuser, which bypasses RLS).
insert into public.organizations (id, name) values
  ('org_case_a', 'Cases Org A'),
  ('org_case_b', 'Cases Org B');
insert into public.contacts (id, org_id, environment, type, name) values
  ('ct_case_a', 'org_case_a', 'live', 'person', 'A'),
  ('ct_case_a_test', 'org_case_a', 'test', 'person', 'A test'),
  ('ct_case_b', 'org_case_b', 'live', 'person', 'B');
insert into public.invoices (id, org_id, environment, type, client_name, currency, issue_date,
    due_date, subtotal, tax, total) values
  ('inv_case_a', 'org_case_a', 'live', 'received', 'S', 'EUR', '2026-01-01', '2026-01-01', 0, 0, 0),
  ('inv_case_a_test', 'org_case_a', 'test', 'received', 'S', 'EUR', '2026-01-01', '2026-01-01', 0, 0, 0),
  ('inv_case_b', 'org_case_b', 'live', 'received', 'S', 'EUR', '2026-01-01', '2026-01-01', 0, 0, 0);
insert into public.documents (id, org_id, environment, filename, storage_path, size_bytes,
    mime_type, status) values
  ('doc_case_a', 'org_case_a', 'live', 'a.pdf', 'org_case_a/doc_case_a/a.pdf', 1, 'application/pdf', 'stored'),
  ('doc_case_b', 'org_case_b', 'live', 'b.pdf', 'org_case_b/doc_case_b/b.pdf', 1, 'application/pdf', 'stored');
insert into public.cases (id, org_id, environment, title, contact_id) values
  ('case_a_live', 'org_case_a', 'live', 'A live', 'ct_case_a'),
  ('case_a_test', 'org_case_a', 'test', 'A test', null),
  ('case_b_live', 'org_case_b', 'live', 'B live', 'ct_case_b');
insert into public.case_links (case_id, org_id, environment, kind, target_id) values
  ('case_a_live', 'org_case_a', 'live', 'invoice', 'inv_case_a'),
  ('case_a_test', 'org_case_a', 'test', 'invoice', 'inv_case_a_test'),
  ('case_b_live', 'org_case_b', 'live', 'invoice', 'inv_case_b');

-- ---------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------
select table_privs_are('public', 'cases', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete cases (no truncate)');
select table_privs_are('public', 'case_links', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete case links (no truncate)');
select is_empty(
  $$select t from unnest(array['public.cases', 'public.case_links']) t
    where has_table_privilege('anon', t, 'select, insert, update, delete, truncate, references, trigger')$$,
  'anon has no privilege on cases'
);
select ok(
  case when to_regprocedure('private.case_link_target_in_tenant()') is null then false
       else not (has_function_privilege('anon',
                   to_regprocedure('private.case_link_target_in_tenant()'), 'execute')
                 or has_function_privilege('authenticated',
                   to_regprocedure('private.case_link_target_in_tenant()'), 'execute')) end,
  'the link check trigger exists and is executable by neither PUBLIC, anon nor authenticated'
);

-- ---------------------------------------------------------------------------------------
-- Row-level security as org A, live
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_case_a","environment":"live"}';

select pg_temp.tenant_isolation('public.cases', 'id', 'case_a_live', 'case_a_test',
  'case_b_live', $$title = 'x'$$, true);
select pg_temp.tenant_isolation('public.case_links', $$case_id || '/' || target_id$$,
  'case_a_live/inv_case_a', 'case_a_test/inv_case_a_test', 'case_b_live/inv_case_b',
  'created_at = now()', true);
select throws_ok(
  $$insert into cases (org_id, title) values ('org_case_b', 'x')$$,
  '42501', null, 'a case cannot be written into another organization');
select throws_ok(
  $$insert into cases (environment, title) values ('test', 'x')$$,
  '42501', null, 'a live caller cannot write a sandbox case');
select throws_ok(
  $$insert into case_links (case_id, org_id, kind, target_id)
    values ('case_b_live', 'org_case_b', 'invoice', 'inv_case_b')$$,
  '23503', null,
  'a link cannot be written into another organization (its records are not there for org A)');

-- ---------------------------------------------------------------------------------------
-- A case stays within its tenant
-- ---------------------------------------------------------------------------------------
select throws_ok(
  $$insert into cases (title, contact_id) values ('x', 'ct_case_b')$$,
  '23503', null, 'a case''s contact cannot be another organization''s');
select throws_ok(
  $$insert into cases (title, contact_id) values ('x', 'ct_case_a_test')$$,
  '23503', null, 'a live case''s contact cannot be a sandbox contact');
select throws_ok(
  $$insert into case_links (case_id, kind, target_id) values ('case_b_live', 'invoice', 'inv_case_a')$$,
  '23503', null, 'a link cannot be added to another organization''s case');
select throws_ok(
  $$insert into case_links (case_id, kind, target_id) values ('case_a_live', 'invoice', 'inv_case_b')$$,
  '23503', null, 'a case cannot link another organization''s invoice');
select throws_ok(
  $$insert into case_links (case_id, kind, target_id)
    values ('case_a_live', 'invoice', 'inv_case_a_test')$$,
  '23503', null, 'a live case cannot link a sandbox invoice');
select throws_ok(
  $$insert into case_links (case_id, kind, target_id) values ('case_a_live', 'document', 'doc_case_b')$$,
  '23503', null, 'a case cannot link another organization''s document');
select throws_ok(
  $$insert into case_links (case_id, kind, target_id) values ('case_a_live', 'message', 'msg_nowhere')$$,
  '23503', null, 'a case cannot link a message that does not exist');
select throws_ok(
  $$update case_links set target_id = 'inv_case_b' where case_id = 'case_a_live'$$,
  '23503', null, 'a link cannot be turned to another organization''s invoice');
select lives_ok(
  $$insert into case_links (case_id, kind, target_id) values ('case_a_live', 'document', 'doc_case_a')$$,
  'a case links a document of its organization and environment');
select throws_ok(
  $$insert into case_links (case_id, kind, target_id) values ('case_a_live', 'contact', 'ct_case_a')$$,
  '23514', null, 'a link is to a document, an invoice or a message');

-- ---------------------------------------------------------------------------------------
-- Check constraints and deletes
-- ---------------------------------------------------------------------------------------
select throws_ok(
  $$insert into cases (title, status) values ('x', 'done')$$,
  '23514', null, 'a case''s status is open, in_progress, waiting or closed');
select throws_ok(
  $$update cases set status = 'closed' where id = 'case_a_live'$$,
  '23514', null, 'a closed case has its closing time');
select throws_ok(
  $$insert into cases (title, tags) values ('x', array_fill('t'::text, array[51]))$$,
  '23514', null, 'a case has at most 50 tags');
select lives_ok($$delete from documents where id = 'doc_case_a'$$, 'a linked document is deleted');
select results_eq(
  $$select kind, target_id from case_links where case_id = 'case_a_live' order by kind$$,
  $$values ('document'::text, 'doc_case_a'::text), ('invoice', 'inv_case_a')$$,
  'its link stays (the API reports it as gone)');
select lives_ok($$delete from contacts where id = 'ct_case_a'$$, 'the case''s contact is deleted');
select results_eq(
  $$select id, contact_id from cases where id = 'case_a_live'$$,
  $$values ('case_a_live'::text, null::text)$$,
  'the case stays, without its contact');
select lives_ok($$delete from cases where id = 'case_a_live'$$, 'the case is deleted');
select is_empty($$select 1 from case_links where case_id = 'case_a_live'$$,
  'its links go with it');

select * from finish();
rollback;
