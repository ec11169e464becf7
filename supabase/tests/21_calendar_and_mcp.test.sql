-- Calendar events and reminders (migration 20261201001600) and MCP executions (001700) in the
-- database: row-level security by organization and environment and the API role's grants,
-- the check constraints, the foreign key that keeps a reminder within its event's tenant,
-- the trigger that keeps a pending reminder's job queued at its time, and the pg_cron
-- sweep that fails MCP executions a dead process left running. (Calendar connections and
-- MCP providers are being folded into public.integrations and are tested with it.)
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(46);

\ir _helpers.psql
\ir _tenant_isolation.psql

-- Fixtures (as the superuser, which bypasses RLS).
insert into public.organizations (id, name) values
  ('org_cal_a', 'Calendar Org A'),
  ('org_cal_b', 'Calendar Org B');
insert into public.calendar_events (id, org_id, environment, title, start_at, end_at) values
  ('evt_a_live', 'org_cal_a', 'live', 'A live', now() + interval '1 day', now() + interval '25 hours'),
  ('evt_a_test', 'org_cal_a', 'test', 'A test', now() + interval '1 day', now() + interval '25 hours'),
  ('evt_b_live', 'org_cal_b', 'live', 'B live', now() + interval '1 day', now() + interval '25 hours');
insert into public.calendar_reminders (id, org_id, environment, event_id, minutes_before,
    due_at, status) values
  ('rem_a_live', 'org_cal_a', 'live', 'evt_a_live', 30, now() + interval '1 day' - interval '30 minutes', 'sent'),
  ('rem_a_test', 'org_cal_a', 'test', 'evt_a_test', 30, now() + interval '1 day' - interval '30 minutes', 'sent'),
  ('rem_b_live', 'org_cal_b', 'live', 'evt_b_live', 30, now() + interval '1 day' - interval '30 minutes', 'sent');
insert into public.mcp_executions (id, org_id, environment, provider, tool, parameters, status,
    completed_at) values
  ('mcp_a_live', 'org_cal_a', 'live', 'google_sheets', 'read_range', '{}', 'completed', now()),
  ('mcp_a_test', 'org_cal_a', 'test', 'google_sheets', 'read_range', '{}', 'completed', now()),
  ('mcp_b_live', 'org_cal_b', 'live', 'google_sheets', 'read_range', '{}', 'completed', now());

-- ---------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------
select table_privs_are('public', 'calendar_events', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete calendar events (no truncate)');
select table_privs_are('public', 'calendar_reminders', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete reminders (no truncate)');
select table_privs_are('public', 'mcp_executions', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE'],
  'authenticated may select, insert and update MCP executions (the record is kept)');
select is_empty(
  $$select t from unnest(array['public.calendar_events', 'public.calendar_reminders',
      'public.mcp_executions']) t
    where has_table_privilege('anon', t, 'select, insert, update, delete, truncate, references, trigger')$$,
  'anon has no privilege on calendar events, reminders and MCP executions'
);
select is_empty(
  $$select f, r from unnest(array['private.calendar_reminder_jobs()',
      'private.queue_calendar_syncs()',
      'private.fail_abandoned_mcp_executions(interval)']::regprocedure[]) f,
    unnest(array['anon', 'authenticated', 'service_role']) r
    where has_function_privilege(r, f, 'execute')$$,
  'the reminder trigger (security definer), the sync queueing and the MCP sweep are executable by neither PUBLIC, anon, authenticated nor service_role'
);

-- ---------------------------------------------------------------------------------------
-- Row-level security as org A, live
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_cal_a","environment":"live"}';

select pg_temp.tenant_isolation('public.calendar_events', 'id', 'evt_a_live', 'evt_a_test',
  'evt_b_live', $$title = 'x'$$, true);
select pg_temp.tenant_isolation('public.calendar_reminders', 'id', 'rem_a_live', 'rem_a_test',
  'rem_b_live', $$detail = 'x'$$, true);
select pg_temp.tenant_isolation('public.mcp_executions', 'id', 'mcp_a_live', 'mcp_a_test',
  'mcp_b_live', 'result_bytes = 1', false);

select throws_ok(
  $$insert into calendar_events (org_id, title, start_at, end_at)
    values ('org_cal_b', 'x', now(), now())$$,
  '42501', null, 'an event cannot be written into another organization');
select throws_ok(
  $$insert into calendar_events (environment, title, start_at, end_at)
    values ('test', 'x', now(), now())$$,
  '42501', null, 'a live caller cannot write a sandbox event');
select throws_ok(
  $$insert into calendar_reminders (org_id, event_id, minutes_before, due_at)
    values ('org_cal_b', 'evt_b_live', 10, now())$$,
  '42501', null, 'a reminder cannot be written into another organization');
select throws_ok(
  $$insert into mcp_executions (org_id, provider, tool, parameters)
    values ('org_cal_b', 'p', 't', '{}')$$,
  '42501', null, 'an MCP execution cannot be written into another organization');
select throws_ok(
  $$insert into mcp_executions (environment, provider, tool, parameters)
    values ('test', 'p', 't', '{}')$$,
  '42501', null, 'a live caller cannot write a sandbox MCP execution');

-- ---------------------------------------------------------------------------------------
-- Calendar: foreign key and check constraints
-- ---------------------------------------------------------------------------------------
select throws_ok(
  $$insert into calendar_reminders (event_id, minutes_before, due_at) values ('evt_b_live', 10, now())$$,
  '23503', null, 'a reminder cannot be of another organization''s event');
select throws_ok(
  $$insert into calendar_reminders (event_id, minutes_before, due_at) values ('evt_a_test', 10, now())$$,
  '23503', null, 'a live reminder cannot be of a sandbox event');
select throws_ok(
  $$insert into calendar_events (title, start_at, end_at)
    values ('x', '2026-05-01T10:00Z', '2026-05-01T09:59Z')$$,
  '23514', null, 'an event does not end before it starts');
select lives_ok(
  $$insert into calendar_events (title, start_at, start_offset, end_at, end_offset)
    values ('x', '2026-05-01T10:00+02:00', '+02:00', '2026-05-01T08:00Z', 'Z')$$,
  'an event may end at its start (instants compared, offsets aside)');
select throws_ok(
  $$insert into calendar_events (title, start_at, start_offset, end_at)
    values ('x', now(), '+2', now())$$,
  '23514', null, 'an offset is Z or ±hh:mm');
select throws_ok(
  $$update calendar_events set status = 'cancelled' where id = 'evt_a_live'$$,
  '23514', null, 'a cancelled event has its cancelling time');
select throws_ok(
  $$update calendar_events set google_sync = 'synced' where id = 'evt_a_live'$$,
  '23514', null, 'a synced event has its Google id');
select throws_ok(
  $$insert into calendar_events (title, start_at, end_at, source) values ('x', now(), now(), 'outlook')$$,
  '23514', null, 'an event comes from BiVelio or Google Calendar');
select throws_ok(
  $$insert into calendar_events (title, start_at, end_at, attendees)
    values ('x', now(), now(), '{"email": "a@b.c"}')$$,
  '23514', null, 'attendees are a list');
select lives_ok(
  $$update calendar_events set google_sync = 'synced', google_event_id = 'g1' where id = 'evt_a_live'$$,
  'an event is synced with its Google id');
select throws_ok(
  $$insert into calendar_events (title, start_at, end_at, google_sync, google_event_id)
    values ('x', now(), now(), 'synced', 'g1')$$,
  '23505', null, 'a Google event is one event per organization and environment');
select throws_ok(
  $$insert into calendar_reminders (event_id, minutes_before, due_at, status)
    values ('evt_a_live', 10, now(), 'queued')$$,
  '23514', null, 'a reminder''s status is one of the six');
select throws_ok(
  $$insert into calendar_reminders (event_id, minutes_before, due_at) values ('evt_a_live', -1, now())$$,
  '23514', null, 'a reminder is not after the event''s start');
select throws_ok(
  $$insert into calendar_reminders (event_id, minutes_before, due_at) values ('evt_a_live', 30, now())$$,
  '23505', null, 'an event has one reminder per lead time');

-- ---------------------------------------------------------------------------------------
-- Calendar: a pending reminder is a job queued at its time
-- ---------------------------------------------------------------------------------------
insert into calendar_reminders (id, event_id, minutes_before, due_at)
values ('rem_q', 'evt_a_live', 60, '2030-01-01T09:00Z');
insert into calendar_reminders (id, event_id, minutes_before, due_at)
values ('rem_q2', 'evt_a_live', 120, '2030-01-01T08:00Z');
reset role;
select results_eq(
  $$select ref, org_id, environment, available_at from private.jobs
    where kind = 'calendar_reminder' and ref in ('rem_q', 'rem_q2', 'rem_a_live') order by ref$$,
  $$values ('rem_q'::text, 'org_cal_a'::text, 'live'::text, '2030-01-01T09:00Z'::timestamptz),
           ('rem_q2', 'org_cal_a', 'live', '2030-01-01T08:00Z')$$,
  'a pending reminder, written by the API role, is a job of its tenant due at its time; a sent one is not'
);
set local role authenticated;
update calendar_reminders set due_at = '2030-01-01T09:30Z' where id = 'rem_q';
update calendar_reminders set status = 'skipped' where id = 'rem_q2';
reset role;
select results_eq(
  $$select ref, available_at from private.jobs
    where kind = 'calendar_reminder' and ref in ('rem_q', 'rem_q2') order by ref$$,
  $$values ('rem_q'::text, '2030-01-01T09:30Z'::timestamptz)$$,
  'a moved reminder moves its job; a skipped one drops it'
);
set local role authenticated;
delete from calendar_events where id = 'evt_a_live';
reset role;
select is_empty(
  $$select 1 from private.jobs where kind = 'calendar_reminder' and ref = 'rem_q'$$,
  'deleting the event deletes its reminders and their jobs'
);
select results_eq(
  $$select schedule, command, active from cron.job where jobname = 'bivelio-calendar-sync'$$,
  $$values ('*/5 * * * *'::text, 'select private.queue_calendar_syncs()'::text, true)$$,
  'pg_cron queues the Google syncs every 5 minutes'
);
set local role authenticated;

-- ---------------------------------------------------------------------------------------
-- MCP executions: check constraints and the sweep
-- ---------------------------------------------------------------------------------------
select throws_ok(
  $$insert into mcp_executions (provider, tool, parameters, status)
    values ('p', 't', '{}', 'done')$$,
  '23514', null, 'an execution''s status is running, completed or failed');
select throws_ok(
  $$insert into mcp_executions (provider, tool, parameters, completed_at)
    values ('p', 't', '{}', now())$$,
  '23514', null, 'a running execution has no completion time');
select throws_ok(
  $$insert into mcp_executions (provider, tool, parameters) values ('p', 't', '[1]')$$,
  '23514', null, 'a tool''s parameters are an object');
select throws_ok(
  $$insert into mcp_executions (provider, tool, parameters) values ('p', '', '{}')$$,
  '23514', null, 'an execution names its tool');
select lives_ok(
  $$insert into mcp_executions (provider, tool, parameters, request_key)
    values ('p', 't', '{}', 'wfi_1.step_1')$$,
  'an execution records its workflow step''s key');
select throws_ok(
  $$insert into mcp_executions (provider, tool, parameters, request_key)
    values ('p', 't', '{}', 'wfi_1.step_1')$$,
  '23505', null, 'a workflow step has one execution (a job run again finds it)');
reset role;
insert into public.mcp_executions (id, org_id, environment, provider, tool, parameters,
    created_at) values
  ('mcp_old', 'org_cal_a', 'live', 'p', 't', '{}', now() - interval '11 minutes'),
  ('mcp_new', 'org_cal_a', 'live', 'p', 't', '{}', now() - interval '2 minutes');
select results_eq(
  $$select schedule, command, active from cron.job
    where jobname = 'bivelio-fail-abandoned-mcp-executions'$$,
  $$values ('* * * * *'::text, 'select private.fail_abandoned_mcp_executions()'::text, true)$$,
  'pg_cron runs the MCP sweep every minute'
);
select ok(private.fail_abandoned_mcp_executions() >= 1, 'the MCP sweep fails something');
select results_eq(
  $$select id, status, error ->> 'code', duration_ms >= 660000
    from public.mcp_executions where id in ('mcp_old', 'mcp_new') order by id$$,
  $$values ('mcp_new'::text, 'running'::text, null::text, null::boolean),
           ('mcp_old', 'failed', 'EXECUTION_ABANDONED', true)$$,
  'an execution running for over 10 minutes is failed with its duration; a recent one is left'
);

select * from finish();
rollback;
