-- Row-level security of the events outbox (own organization and environment only, select
-- and insert only) and of organizations / organization_members (own organization only,
-- read-only).
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(20);

-- Fixtures (as the superuser).
insert into public.organizations (id, name) values
  ('org_ev_a', 'Events Org A'),
  ('org_ev_b', 'Events Org B');

insert into auth.users (id, email) values
  ('00000000-0000-4000-a000-0000000e0001', 'owner-a@events.test'),
  ('00000000-0000-4000-a000-0000000e0002', 'owner-b@events.test');
insert into public.organization_members (org_id, user_id, role) values
  ('org_ev_a', '00000000-0000-4000-a000-0000000e0001', 'owner'),
  ('org_ev_b', '00000000-0000-4000-a000-0000000e0002', 'owner');

insert into public.events (id, org_id, environment, type, data) values
  ('ev_a_live', 'org_ev_a', 'live', 'contact.created', '{"id":"ct_1"}'),
  ('ev_a_test', 'org_ev_a', 'test', 'contact.created', '{"id":"ct_2"}'),
  ('ev_b_live', 'org_ev_b', 'live', 'contact.updated', '{"id":"ct_3"}');

set local role authenticated;

-- ---------------------------------------------------------------------------------------
-- events: visibility
-- ---------------------------------------------------------------------------------------
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ev_a","environment":"live"}';
select results_eq(
  'select id from events order by seq',
  array['ev_a_live'],
  'org A live sees only its own live events'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ev_a","environment":"test"}';
select results_eq(
  'select id from events order by seq',
  array['ev_a_test'],
  'org A test sees only its own test events'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ev_b","environment":"live"}';
select results_eq(
  'select id from events order by seq',
  array['ev_b_live'],
  'org B live sees only its own live events'
);

set local request.jwt.claims = '{"role":"authenticated","environment":"live"}';
select is_empty('select id from events', 'claims without org_id see no events');

-- ---------------------------------------------------------------------------------------
-- events: writes
-- ---------------------------------------------------------------------------------------
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ev_a","environment":"test"}';
select lives_ok(
  $$insert into events (id, type, data) values ('ev_a_new', 'contact.created', '{"id":"ct_9"}')$$,
  'a caller can append an event for its own org and environment'
);
select results_eq(
  $$select org_id, environment, seq is not null from events where id = 'ev_a_new'$$,
  $$values ('org_ev_a', 'test', true)$$,
  'the event''s org_id and environment default from the claims, seq is assigned'
);
select throws_ok(
  $$insert into events (type, data, org_id) values ('contact.created', '{}', 'org_ev_b')$$,
  '42501',
  'new row violates row-level security policy for table "events"',
  'cannot append an event for another organization'
);
select throws_ok(
  $$insert into events (type, data, environment) values ('contact.created', '{}', 'live')$$,
  '42501',
  'new row violates row-level security policy for table "events"',
  'a test caller cannot append a live event'
);
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ev_a","environment":"live"}';
select throws_ok(
  $$insert into events (type, data, environment) values ('contact.created', '{}', 'test')$$,
  '42501',
  'new row violates row-level security policy for table "events"',
  'a live caller cannot append a test event'
);
select throws_ok(
  $$update events set data = '{}' where id = 'ev_a_live'$$,
  '42501',
  'permission denied for table events',
  'events are append-only: update is not granted'
);
select throws_ok(
  $$delete from events where id = 'ev_a_live'$$,
  '42501',
  'permission denied for table events',
  'events are append-only: delete is not granted'
);

-- ---------------------------------------------------------------------------------------
-- organizations and organization_members
-- ---------------------------------------------------------------------------------------
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000e0001","org_id":"org_ev_a"}';
select results_eq(
  'select id from organizations order by id',
  array['org_ev_a'],
  'a caller sees only its own organization'
);
select results_eq(
  'select org_id, user_id from organization_members order by user_id',
  $$values ('org_ev_a', '00000000-0000-4000-a000-0000000e0001'::uuid)$$,
  'a caller sees only its own organization''s members'
);
select throws_ok(
  $$update organizations set plan = 'enterprise' where id = 'org_ev_a'$$,
  '42501',
  'permission denied for table organizations',
  'a caller cannot change its organization (e.g. upgrade its plan)'
);
select throws_ok(
  $$insert into organization_members (org_id, user_id, role)
    values ('org_ev_b', '00000000-0000-4000-a000-0000000e0001', 'owner')$$,
  '42501',
  'permission denied for table organization_members',
  'a caller cannot add itself to another organization'
);
select throws_ok(
  $$update organization_members set role = 'owner'
    where user_id = '00000000-0000-4000-a000-0000000e0001'$$,
  '42501',
  'permission denied for table organization_members',
  'a caller cannot change membership roles'
);

-- ---------------------------------------------------------------------------------------
-- anon, and the superuser's view afterwards
-- ---------------------------------------------------------------------------------------
set local role anon;
set local request.jwt.claims = '{"role":"anon","org_id":"org_ev_a","environment":"live"}';
select throws_ok('select id from public.events', '42501', 'permission denied for table events',
  'anon cannot read events');
select throws_ok('select id from public.organizations', '42501',
  'permission denied for table organizations', 'anon cannot read organizations');
select throws_ok('select org_id from public.organization_members', '42501',
  'permission denied for table organization_members', 'anon cannot read organization_members');

reset role;
select results_eq(
  $$select id from public.events where org_id in ('org_ev_a', 'org_ev_b') order by seq$$,
  array['ev_a_live', 'ev_a_test', 'ev_b_live', 'ev_a_new'],
  'exactly one event was added, and none were changed or removed'
);

select * from finish();
rollback;
