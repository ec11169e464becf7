-- The scheduled clean-up: the pg_cron job, and private.purge_expired_data(), which removes
-- sandbox (test) contacts and events older than 24 hours, idempotency records older than
-- 24 hours and idle rate-limit counters, and keeps everything else.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(14);

-- ---------------------------------------------------------------------------------------
-- The cron job
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select schedule, command, active from cron.job where jobname = 'bivelio-purge-expired-data'$$,
  $$values ('*/10 * * * *'::text, 'select private.purge_expired_data()'::text, true)$$,
  'cron.job has the active job bivelio-purge-expired-data, every 10 minutes'
);
select is(
  (select count(*)::int from cron.job where command ilike '%purge_expired_data%'),
  1,
  'the clean-up is scheduled exactly once'
);

-- ---------------------------------------------------------------------------------------
-- Fixtures, aged by hand (now() is the start of this transaction, as in the function)
-- ---------------------------------------------------------------------------------------
insert into public.organizations (id, name) values ('org_purge', 'Purge Org');

insert into public.contacts (id, org_id, environment, type, name, company_id, created_at) values
  ('ct_purge_test_old_co', 'org_purge', 'test', 'company', 'Old test company', null,
   now() - interval '25 hours'),
  ('ct_purge_test_old', 'org_purge', 'test', 'person', 'Old test person', null,
   now() - interval '24 hours 1 second'),
  ('ct_purge_test_23h', 'org_purge', 'test', 'person', 'Almost a day', null,
   now() - interval '23 hours'),
  ('ct_purge_test_new', 'org_purge', 'test', 'person', 'New test person',
   'ct_purge_test_old_co', now()),
  ('ct_purge_live_old', 'org_purge', 'live', 'person', 'Old live person', null,
   now() - interval '400 days'),
  ('ct_purge_live_old_co', 'org_purge', 'live', 'company', 'Old live company', null,
   now() - interval '400 days'),
  ('ct_purge_live_new', 'org_purge', 'live', 'person', 'New live person',
   'ct_purge_live_old_co', now());

insert into public.events (id, org_id, environment, type, data, created_at) values
  ('ev_purge_test_old', 'org_purge', 'test', 'contact.created', '{}', now() - interval '25 hours'),
  ('ev_purge_test_new', 'org_purge', 'test', 'contact.created', '{}', now() - interval '1 hour'),
  ('ev_purge_live_old', 'org_purge', 'live', 'contact.created', '{}', now() - interval '400 days');

insert into private.idempotency_keys (org_id, environment, idempotency_key, request_hash,
                                      response_status, created_at) values
  ('org_purge', 'live', 'idem_old', 'h', 201, now() - interval '25 hours'),
  ('org_purge', 'live', 'idem_new', 'h', 201, now() - interval '23 hours');

insert into public.organizations (id, name) values ('org_purge_2', 'Purge Org 2');

-- A table a later group's migration registers, as its migration would.
create table public.purge_probe (
  id text primary key, environment text not null, created_at timestamptz not null
);
insert into public.purge_probe values
  ('probe_test_old', 'test', now() - interval '25 hours'),
  ('probe_test_new', 'test', now()),
  ('probe_live_old', 'live', now() - interval '400 days');
insert into private.sandbox_tables (table_name) values ('public.purge_probe');
insert into public.contacts (id, org_id, environment, type, name, created_at) values
  ('ct_purge2_test_old', 'org_purge_2', 'test', 'person', 'Old', now() - interval '2 days');
insert into private.rate_limit_counters values
  ('org_purge', date_trunc('minute', now()) - interval '3 minutes', 10,
   date_trunc('second', now()) - interval '3 minutes', 1),
  ('org_purge_2', date_trunc('minute', now()), 10, date_trunc('second', now()), 1);

select lives_ok('select private.purge_expired_data()', 'purge_expired_data runs');

-- ---------------------------------------------------------------------------------------
-- What was removed and what was kept
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select id from public.contacts where org_id = 'org_purge' and environment = 'test' order by id$$,
  array['ct_purge_test_23h', 'ct_purge_test_new'],
  'test contacts older than 24 hours are deleted, younger ones kept'
);
select results_eq(
  $$select id from public.contacts where org_id = 'org_purge' and environment = 'live' order by id$$,
  array['ct_purge_live_new', 'ct_purge_live_old', 'ct_purge_live_old_co'],
  'live contacts are never purged, however old'
);
select is(
  (select company_id from public.contacts where id = 'ct_purge_test_new'),
  null,
  'a recent test person linked to a purged test company is kept, unlinked'
);
select is(
  (select company_id from public.contacts where id = 'ct_purge_live_new'),
  'ct_purge_live_old_co',
  'links between live contacts are untouched'
);
select results_eq(
  $$select id from public.events where org_id = 'org_purge' order by id$$,
  array['ev_purge_live_old', 'ev_purge_test_new'],
  'test events older than 24 hours are deleted; recent test and all live events are kept'
);
select results_eq(
  $$select idempotency_key from private.idempotency_keys where org_id = 'org_purge'$$,
  array['idem_new'],
  'idempotency records older than 24 hours are deleted, younger ones kept'
);
select results_eq(
  $$select org_id from private.rate_limit_counters
    where org_id in ('org_purge', 'org_purge_2')$$,
  array['org_purge_2'],
  'rate-limit counters idle for over 2 minutes are deleted, current ones kept'
);
select is_empty(
  $$select id from public.contacts where id = 'ct_purge2_test_old'$$,
  'the purge covers every organization''s sandbox, not just one'
);

select results_eq(
  $$select id from public.purge_probe order by id$$,
  array['probe_live_old', 'probe_test_new'],
  'a table registered in private.sandbox_tables is purged by the same rule, with no new function'
);
select ok(
  (select count(*) from private.sandbox_tables) >= 7,
  'every table of the landed groups is registered for the sandbox purge'
);

-- ---------------------------------------------------------------------------------------
-- The API role cannot run the clean-up
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_purge","environment":"test"}';
select throws_ok(
  'select private.purge_expired_data()',
  '42501',
  null,
  'authenticated cannot run purge_expired_data'
);
reset role;

select * from finish();
rollback;
