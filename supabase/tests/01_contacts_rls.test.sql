-- Row-level security of public.contacts: isolation by organization and by environment
-- (live vs test), claim-based defaults, writes across tenants, and the composite
-- same-org/same-environment company link.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(30);

\ir _helpers.psql

-- Callers are impersonated as the API does (shared/platform/db.ts withClaims): role authenticated
-- and request.jwt.claims, both local to this transaction.

-- Fixtures (as the superuser, which bypasses RLS).
insert into public.organizations (id, name) values
  ('org_ct_a', 'Contacts Org A'),
  ('org_ct_b', 'Contacts Org B');

insert into public.contacts (id, org_id, environment, type, name, company_id) values
  ('ct_a_live_co', 'org_ct_a', 'live', 'company', 'A Live Co', null),
  ('ct_a_live_p',  'org_ct_a', 'live', 'person',  'A Live Person', 'ct_a_live_co'),
  ('ct_a_test_co', 'org_ct_a', 'test', 'company', 'A Test Co', null),
  ('ct_a_test_p',  'org_ct_a', 'test', 'person',  'A Test Person', 'ct_a_test_co'),
  ('ct_b_live_co', 'org_ct_b', 'live', 'company', 'B Live Co', null),
  ('ct_b_test_p',  'org_ct_b', 'test', 'person',  'B Test Person', null);

-- ---------------------------------------------------------------------------------------
-- Visibility
-- ---------------------------------------------------------------------------------------
set local role authenticated;

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_a","environment":"live"}';
select results_eq(
  'select id from contacts order by id',
  array['ct_a_live_co', 'ct_a_live_p'],
  'org A live sees only its own live contacts (not test, not org B, not seed orgs)'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_a","environment":"test"}';
select results_eq(
  'select id from contacts order by id',
  array['ct_a_test_co', 'ct_a_test_p'],
  'org A test sees only its own test contacts (not live)'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_b","environment":"live"}';
select results_eq(
  'select id from contacts order by id',
  array['ct_b_live_co'],
  'org B live sees only its own live contacts'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_b","environment":"test"}';
select results_eq(
  'select id from contacts order by id',
  array['ct_b_test_p'],
  'org B test sees only its own test contacts'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_a"}';
select results_eq(
  'select id from contacts order by id',
  array['ct_a_live_co', 'ct_a_live_p'],
  'claims without environment (user JWTs) mean live'
);

set local request.jwt.claims = '{"role":"authenticated","environment":"live"}';
select is_empty(
  'select id from contacts',
  'claims without org_id see no contacts at all'
);
select throws_ok(
  $$insert into contacts (type, name) values ('person', 'Orphan')$$,
  '42501',
  'new row violates row-level security policy for table "contacts"',
  'claims without org_id cannot insert a contact'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_a","environment":"live"}';
select is_empty(
  $$select id from contacts where id in ('ct_b_live_co', 'ct_a_test_p')$$,
  'asking for another org''s or environment''s row by id returns nothing'
);

-- ---------------------------------------------------------------------------------------
-- Inserts: defaults from the claims, with check on org and environment
-- ---------------------------------------------------------------------------------------
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_a","environment":"test"}';

select lives_ok(
  $$insert into contacts (id, type, name) values ('ct_a_new_test', 'person', 'New Test')$$,
  'org A test can insert a contact without org_id/environment'
);
select results_eq(
  $$select org_id, environment from contacts where id = 'ct_a_new_test'$$,
  $$values ('org_ct_a', 'test')$$,
  'org_id and environment default from the claims'
);
select throws_ok(
  $$insert into contacts (type, name, org_id) values ('person', 'Intruder', 'org_ct_b')$$,
  '42501',
  'new row violates row-level security policy for table "contacts"',
  'cannot insert a contact for another organization'
);
select throws_ok(
  $$insert into contacts (type, name, environment) values ('person', 'Leak', 'live')$$,
  '42501',
  'new row violates row-level security policy for table "contacts"',
  'a test caller cannot insert a live contact'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ct_a","environment":"live"}';
select throws_ok(
  $$insert into contacts (type, name, environment) values ('person', 'Leak', 'test')$$,
  '42501',
  'new row violates row-level security policy for table "contacts"',
  'a live caller cannot insert a test contact'
);

-- ---------------------------------------------------------------------------------------
-- Updates and deletes across tenants
-- ---------------------------------------------------------------------------------------
select is(
  pg_temp.affected($$update contacts set name = 'Hacked' where id = 'ct_b_live_co'$$), 0,
  'updating another org''s contact affects 0 rows'
);
select is(
  pg_temp.affected($$delete from contacts where id = 'ct_b_live_co'$$), 0,
  'deleting another org''s contact affects 0 rows'
);
select is(
  pg_temp.affected($$update contacts set name = 'Hacked' where id = 'ct_a_test_p'$$), 0,
  'a live caller updating its own org''s test contact affects 0 rows'
);
select is(
  pg_temp.affected($$delete from contacts where id = 'ct_a_test_p'$$), 0,
  'a live caller deleting its own org''s test contact affects 0 rows'
);
select is(
  pg_temp.affected($$update contacts set name = 'A Live Person (renamed)' where id = 'ct_a_live_p'$$),
  1,
  'updating its own live contact affects 1 row'
);
select throws_ok(
  $$update contacts set org_id = 'org_ct_b' where id = 'ct_a_live_p'$$,
  '42501',
  'new row violates row-level security policy for table "contacts"',
  'cannot move an own contact into another organization'
);
select throws_ok(
  $$update contacts set environment = 'test', company_id = null where id = 'ct_a_live_p'$$,
  '42501',
  'new row violates row-level security policy for table "contacts"',
  'cannot move an own live contact into the test environment'
);

-- ---------------------------------------------------------------------------------------
-- Company link: same organization and environment only; company delete unlinks people
-- (as the API role, the company trigger cannot see the other tenant's company: 23514;
-- 09_hardening checks the composite foreign key for writers that bypass RLS)
-- ---------------------------------------------------------------------------------------
select throws_ok(
  $$insert into contacts (type, name, company_id) values ('person', 'Cross', 'ct_b_live_co')$$,
  '23514', null,
  'company_id of another organization is refused'
);
select throws_ok(
  $$insert into contacts (type, name, company_id) values ('person', 'Cross', 'ct_a_test_co')$$,
  '23514', null,
  'company_id of the same organization but the other environment is refused'
);
select throws_ok(
  $$update contacts set company_id = 'ct_b_live_co' where id = 'ct_a_live_p'$$,
  '23514', null,
  'an update cannot link to another organization''s company either'
);
select lives_ok(
  $$insert into contacts (id, type, name, company_id)
    values ('ct_a_live_p2', 'person', 'Second Person', 'ct_a_live_co')$$,
  'company_id of the same organization and environment is accepted'
);
select is(
  pg_temp.affected($$delete from contacts where id = 'ct_a_live_co'$$), 1,
  'deleting its own company affects 1 row'
);
select results_eq(
  $$select id, company_id from contacts where id in ('ct_a_live_p', 'ct_a_live_p2') order by id$$,
  $$values ('ct_a_live_p', null::text), ('ct_a_live_p2', null::text)$$,
  'deleting a company sets its people''s company_id to null (people are kept)'
);

-- ---------------------------------------------------------------------------------------
-- Back as the superuser: the other tenant's rows are untouched; anon has no access
-- ---------------------------------------------------------------------------------------
reset role;
select results_eq(
  $$select id, name from public.contacts where org_id = 'org_ct_b' order by id$$,
  $$values ('ct_b_live_co', 'B Live Co'), ('ct_b_test_p', 'B Test Person')$$,
  'org B''s contacts survived org A''s update/delete attempts unchanged'
);
select results_eq(
  $$select id, name, company_id from public.contacts where id = 'ct_a_test_p'$$,
  $$values ('ct_a_test_p', 'A Test Person', 'ct_a_test_co')$$,
  'org A''s test contact survived the live caller''s attempts unchanged'
);

set local role anon;
set local request.jwt.claims = '{"role":"anon","org_id":"org_ct_a","environment":"live"}';
select throws_ok(
  'select id from public.contacts',
  '42501',
  'permission denied for table contacts',
  'anon cannot read contacts, even with org claims'
);
select throws_ok(
  $$insert into public.contacts (type, name) values ('person', 'Anon')$$,
  '42501',
  'permission denied for table contacts',
  'anon cannot insert contacts'
);
reset role;

select * from finish();
rollback;
