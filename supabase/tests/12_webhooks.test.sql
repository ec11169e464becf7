-- Webhooks in the database: row-level security (organization, environment, admin-only
-- writes), signing secrets out of the API role's reach, the events fan-out, holding and
-- releasing deliveries with the webhook's status, and the sandbox purge.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(43);

\ir _helpers.psql

-- Fixtures (as the superuser, which bypasses RLS).
insert into public.organizations (id, name) values
  ('org_wh_a', 'Webhooks Org A'),
  ('org_wh_b', 'Webhooks Org B');
insert into auth.users (id, email) values
  ('00000000-0000-4000-a000-00000000c0a1', 'wh-admin@test.example'),
  ('00000000-0000-4000-a000-00000000c0a2', 'wh-member@test.example');
insert into public.organization_members (org_id, user_id, role) values
  ('org_wh_a', '00000000-0000-4000-a000-00000000c0a1', 'admin'),
  ('org_wh_a', '00000000-0000-4000-a000-00000000c0a2', 'member');
insert into public.webhooks (id, org_id, environment, url, events) values
  ('wh_a_live', 'org_wh_a', 'live', 'https://a.example/live', '{contact.created}'),
  ('wh_a_live_all', 'org_wh_a', 'live', 'https://a.example/all',
   '{contact.created,contact.updated}'),
  ('wh_a_test', 'org_wh_a', 'test', 'https://a.example/test', '{contact.created}'),
  ('wh_b_live', 'org_wh_b', 'live', 'https://b.example/live', '{contact.created}');
insert into private.webhook_secrets (webhook_id, secret) values
  ('wh_a_live', 'whsec_secret_of_a_live'),
  ('wh_b_live', 'whsec_secret_of_b_live');

-- ---------------------------------------------------------------------------------------
-- Secrets: not readable by the API role, written only through set_webhook_secret
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"live","scopes":["read","write","admin"]}';

select throws_ok(
  'select secret from private.webhook_secrets', '42501', null,
  'authenticated cannot read webhook secrets, not even its own organization''s'
);
select throws_ok(
  $$insert into private.webhook_secrets (webhook_id, secret) values ('wh_b_live', 'x')$$,
  '42501', null,
  'authenticated cannot write webhook secrets directly'
);
select ok(
  (select previous_expires_at is not null from private.set_webhook_secret('wh_a_live', 'whsec_new_one_for_a')),
  'an admin key rotates its own webhook''s secret; the replaced one has an expiry'
);
select is_empty(
  $$select * from private.set_webhook_secret('wh_b_live', 'whsec_taken_over_b!')$$,
  'set_webhook_secret on another organization''s webhook does nothing (no row)'
);
select is_empty(
  $$select * from private.set_webhook_secret('wh_a_test', 'whsec_other_environment')$$,
  'set_webhook_secret on the other environment''s webhook does nothing'
);

set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"live","scopes":["read","write"]}';
select is_empty(
  $$select * from private.set_webhook_secret('wh_a_live', 'whsec_no_admin_scope')$$,
  'a key without the admin scope cannot set a secret'
);
reset role;

select results_eq(
  $$select secret, expires_at is null from private.webhook_secrets
    where webhook_id = 'wh_a_live' order by created_at$$,
  $$values ('whsec_secret_of_a_live'::text, false), ('whsec_new_one_for_a', true)$$,
  'the rotation kept the old secret (expiring) beside the new one (current)'
);
select ok(
  (select expires_at between now() + interval '23 hours 59 minutes' and now() + interval '24 hours'
   from private.webhook_secrets where webhook_id = 'wh_a_live' and expires_at is not null),
  'the replaced secret signs for 24 more hours'
);
select results_eq(
  $$select secret from private.webhook_secrets where webhook_id = 'wh_b_live'$$,
  array['whsec_secret_of_b_live'],
  'org B''s secret is untouched'
);

-- ---------------------------------------------------------------------------------------
-- Visibility and writes
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"live","scopes":["read"]}';
select results_eq(
  'select id from webhooks order by id',
  array['wh_a_live', 'wh_a_live_all'],
  'org A live sees only its own live webhooks'
);
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"test","scopes":["read"]}';
select results_eq(
  'select id from webhooks order by id',
  array['wh_a_test'],
  'org A test sees only its sandbox webhook'
);

-- A member (signed in, not an admin) reads webhooks but cannot change them, even through
-- PostgREST with their own JWT.
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-00000000c0a2","org_id":"org_wh_a","org_role":"member"}';
select results_eq(
  'select id from webhooks order by id',
  array['wh_a_live', 'wh_a_live_all'],
  'a member can read the organization''s webhooks'
);
select is(
  pg_temp.affected($$update webhooks set url = 'https://attacker.example/' where id = 'wh_a_live'$$),
  0,
  'a member cannot point a webhook elsewhere'
);
select is(
  pg_temp.affected($$delete from webhooks where id = 'wh_a_live'$$), 0,
  'a member cannot delete a webhook'
);
select throws_ok(
  $$insert into webhooks (url, events) values ('https://attacker.example/', '{contact.created}')$$,
  '42501', 'new row violates row-level security policy for table "webhooks"',
  'a member cannot create a webhook'
);

-- An organization admin (signed in) can.
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-00000000c0a1","org_id":"org_wh_a","org_role":"admin"}';
select lives_ok(
  $$insert into webhooks (id, url, events) values ('wh_a_new', 'https://a.example/new', '{invoice.paid}')$$,
  'an organization admin can create a webhook'
);
select results_eq(
  $$select org_id, environment, status from webhooks where id = 'wh_a_new'$$,
  $$values ('org_wh_a'::text, 'live'::text, 'active'::text)$$,
  'org_id and environment default from the claims; a new webhook is active'
);
select throws_ok(
  $$insert into webhooks (url, events, org_id) values ('https://a.example/', '{contact.created}', 'org_wh_b')$$,
  '42501', 'new row violates row-level security policy for table "webhooks"',
  'cannot create a webhook for another organization'
);
select throws_ok(
  $$insert into webhooks (url, events) values ('https://a.example/', '{contact.deleted}')$$,
  '23514', null,
  'events must be the spec''s event names'
);
select is(
  pg_temp.affected($$update webhooks set url = 'https://a.example/x' where id = 'wh_b_live'$$), 0,
  'updating another organization''s webhook affects 0 rows'
);
select throws_ok(
  $$update webhooks set org_id = 'org_wh_b' where id = 'wh_a_new'$$,
  '42501', 'new row violates row-level security policy for table "webhooks"',
  'cannot move a webhook into another organization'
);
select throws_ok(
  $$insert into webhook_deliveries (webhook_id, event_type, test_data) values ('wh_b_live', 'webhook.test', '{}')$$,
  '23503', null,
  'a delivery cannot be attached to another organization''s webhook'
);
reset role;

-- ---------------------------------------------------------------------------------------
-- Fan-out from the events outbox
-- ---------------------------------------------------------------------------------------
update public.webhooks set status = 'disabled', disabled_reason = 'manual', disabled_at = now()
where id = 'wh_a_live_all';

set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_wh_a","environment":"live"}';
insert into public.events (id, type, data) values ('ev_wh_a_created', 'contact.created', '{"id":"ct_1"}');
insert into public.events (id, type, data) values ('ev_wh_a_updated', 'contact.updated', '{"id":"ct_1"}');
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_wh_a","environment":"test"}';
insert into public.events (id, type, data) values ('ev_wh_a_test', 'contact.created', '{"id":"ct_2"}');
reset role;

select results_eq(
  $$select webhook_id, event_id, status from public.webhook_deliveries
    where org_id in ('org_wh_a', 'org_wh_b') order by webhook_id, event_id$$,
  $$values ('wh_a_live'::text, 'ev_wh_a_created'::text, 'pending'::text),
           ('wh_a_live_all', 'ev_wh_a_created', 'held'),
           ('wh_a_live_all', 'ev_wh_a_updated', 'held'),
           ('wh_a_test', 'ev_wh_a_test', 'pending')$$,
  'each event makes one delivery per subscribed webhook of its organization and environment; a disabled one''s are held'
);
select results_eq(
  $$select d.webhook_id from private.jobs j join public.webhook_deliveries d on d.id = j.ref
    where j.kind = 'webhook' and d.org_id = 'org_wh_a' order by d.webhook_id$$,
  array['wh_a_live', 'wh_a_test'],
  'pending deliveries are queued jobs; held ones are not'
);

-- Reactivation queues the held deliveries; disabling holds the pending ones.
update public.webhooks set status = 'active', disabled_reason = null, disabled_at = null
where id = 'wh_a_live_all';
select results_eq(
  $$select d.status, count(j.id)::int from public.webhook_deliveries d
    left join private.jobs j on j.kind = 'webhook' and j.ref = d.id
    where d.webhook_id = 'wh_a_live_all' group by d.status$$,
  $$values ('pending'::text, 2)$$,
  'reactivating a webhook queues every delivery it held'
);
update public.webhooks set status = 'disabled', disabled_reason = 'manual', disabled_at = now()
where id = 'wh_a_live_all';
select results_eq(
  $$select d.status, count(j.id)::int from public.webhook_deliveries d
    left join private.jobs j on j.kind = 'webhook' and j.ref = d.id
    where d.webhook_id = 'wh_a_live_all' group by d.status$$,
  $$values ('held'::text, 0)$$,
  'disabling a webhook holds its queued deliveries and drops their jobs'
);

-- ---------------------------------------------------------------------------------------
-- Deliveries and attempts: visibility, redelivery, the worker's record
-- ---------------------------------------------------------------------------------------
select j.id as live_job from private.jobs j join public.webhook_deliveries d on d.id = j.ref
where j.kind = 'webhook' and d.event_id = 'ev_wh_a_created' and d.webhook_id = 'wh_a_live' \gset

set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_b","environment":"live","scopes":["read","write","admin"]}';
select is_empty(
  $$select id from webhook_deliveries where org_id = 'org_wh_a'$$,
  'org B sees none of org A''s deliveries'
);
select is(
  private.redeliver_webhook_delivery(
    (select id from public.webhook_deliveries
     where event_id = 'ev_wh_a_created' and webhook_id = 'wh_a_live')),
  null,
  'redeliver of another organization''s delivery does nothing'
);
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"live","scopes":["read","write","admin"]}';
select is(
  private.record_webhook_attempt(:live_job, gen_random_uuid(), true, now(), 200, 5, null,
                                 now() + interval '30 seconds'),
  'lease_lost',
  'the API role cannot record attempts without the job''s lease token (the worker''s capability)'
);
select is(
  private.redeliver_webhook_delivery(
    (select id from public.webhook_deliveries where webhook_id = 'wh_a_live_all'
     and event_id = 'ev_wh_a_updated')),
  'held',
  'an admin redelivers a held delivery of its own'
);
reset role;
select results_eq(
  $$select d.status, d.manual, count(j.id)::int from public.webhook_deliveries d
    left join private.jobs j on j.kind = 'webhook' and j.ref = d.id
    where d.event_id = 'ev_wh_a_updated' group by d.status, d.manual$$,
  $$values ('pending'::text, true, 1)$$,
  'a redelivered held delivery is one manual attempt, queued'
);
set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"live","scopes":["read","write","admin"]}';
select throws_ok(
  $$insert into webhook_attempts (delivery_id, attempt, org_id, environment, webhook_id,
      attempted_at, duration_ms, success)
    select id, 99, 'org_wh_b', 'live', webhook_id, now(), 1, true
    from webhook_deliveries where event_id = 'ev_wh_a_created' and webhook_id = 'wh_a_live'$$,
  '42501', null,
  'attempts cannot be written into another organization'
);
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"live","scopes":["read","write"]}';
select is(
  pg_temp.affected($$update webhook_deliveries set status = 'delivered'$$), 0,
  'without the admin scope deliveries cannot be changed'
);
reset role;

select is(
  private.record_webhook_attempt(:live_job, gen_random_uuid(), true, now(), 200, 5, null,
                                 now() + interval '30 seconds'),
  'lease_lost',
  'recording an attempt needs the job''s lease token'
);

-- The job of a delivery that is deleted goes with it.
delete from public.webhooks where id = 'wh_a_live';
select is_empty(
  $$select j.id from private.jobs j where j.kind = 'webhook'
    and not exists (select from public.webhook_deliveries d where d.id = j.ref)$$,
  'deleting a webhook deletes its deliveries and their queued jobs'
);

-- ---------------------------------------------------------------------------------------
-- Sandbox purge, anon, privileges
-- ---------------------------------------------------------------------------------------
update public.webhooks set created_at = now() - interval '25 hours' where id = 'wh_a_test';
update public.webhook_deliveries set created_at = now() - interval '25 hours'
where webhook_id = 'wh_a_test';
update public.webhooks set created_at = now() - interval '400 days' where id = 'wh_b_live';
select lives_ok('select private.purge_expired_data()', 'purge_expired_data runs');
select is_empty(
  $$select id from public.webhooks where id = 'wh_a_test'$$,
  'sandbox webhooks older than 24 hours are purged'
);
select is_empty(
  $$select id from public.webhook_deliveries where webhook_id = 'wh_a_test'$$,
  'with their deliveries'
);
select is_empty(
  $$select j.id from private.jobs j where j.kind = 'webhook'
    and not exists (select from public.webhook_deliveries d where d.id = j.ref)$$,
  'and their jobs'
);
select results_eq(
  $$select id from public.webhooks where id = 'wh_b_live'$$,
  array['wh_b_live'],
  'live webhooks are never purged'
);

set local role anon;
set local request.jwt.claims = '{"role":"anon","org_id":"org_wh_a","environment":"live"}';
select throws_ok('select id from public.webhooks', '42501', null, 'anon cannot read webhooks');
select throws_ok(
  'select id from public.webhook_deliveries', '42501', null, 'anon cannot read deliveries'
);
reset role;

set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_wh_a","environment":"live","scopes":["admin"]}';
select throws_ok('truncate public.webhooks', '42501', null,
  'authenticated cannot TRUNCATE webhooks (TRUNCATE ignores RLS)');
reset role;

select * from finish();
rollback;
