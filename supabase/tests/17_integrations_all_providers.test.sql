-- public.integrations for every provider (migration 20261202000100): the provider and name
-- checks, one active integration per provider (per name for MCP servers), sealed
-- credentials (none only for an MCP server), row-level security of the integrations and of
-- the calendar's sync state, the same-tenant foreign keys of the sync state and of MCP
-- executions, the calendar sync queue reading the integrations, and the sandbox purge list.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(31);

\ir _helpers.psql
\ir _tenant_isolation.psql

-- Fixtures (as the superuser, which bypasses RLS).
insert into public.organizations (id, name) values
  ('org_int_a', 'Integrations Org A'),
  ('org_int_b', 'Integrations Org B');
insert into public.integrations (id, org_id, environment, provider, name, sealed_credentials,
    public) values
  ('int_gc_a_live', 'org_int_a', 'live', 'google_calendar', 'google_calendar', 'v1.x.y',
   '{"calendar_id": "primary"}'),
  ('int_gc_a_test', 'org_int_a', 'test', 'google_calendar', 'google_calendar', 'v1.x.y',
   '{"calendar_id": "primary"}'),
  ('int_gc_b_live', 'org_int_b', 'live', 'google_calendar', 'google_calendar', 'v1.x.y',
   '{"calendar_id": "primary"}'),
  ('int_mcp_a_live', 'org_int_a', 'live', 'mcp', 'google_sheets', null,
   '{"url": "https://sheets.example/mcp"}'),
  ('int_mcp_b_live', 'org_int_b', 'live', 'mcp', 'google_sheets', null,
   '{"url": "https://sheets.example/mcp"}');
insert into public.calendar_sync_state (integration_id, org_id, environment, sync_token) values
  ('int_gc_a_live', 'org_int_a', 'live', 'sync_a_live'),
  ('int_gc_a_test', 'org_int_a', 'test', 'sync_a_test'),
  ('int_gc_b_live', 'org_int_b', 'live', 'sync_b_live');

-- ---------------------------------------------------------------------------------------
-- The old tables are gone; the new one is purged with the sandbox
-- ---------------------------------------------------------------------------------------
select ok(to_regclass('public.calendar_connections') is null
    and to_regclass('public.mcp_providers') is null,
  'calendar_connections and mcp_providers are folded into integrations');
select is_empty(
  $$select table_name from private.sandbox_tables where to_regclass(table_name::text) is null$$,
  'the sandbox purge list names no dropped table');
select lives_ok($$select private.purge_expired_data()$$, 'the sandbox purge runs');
select table_privs_are('public', 'calendar_sync_state', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete the calendar sync state (no truncate)');
select ok(not has_table_privilege('anon', 'public.calendar_sync_state', 'select'),
  'anon cannot read the calendar sync state');
select hasnt_column('public', 'mcp_executions', 'provider_id',
  'MCP executions no longer point at a provider table');
select has_column('public', 'mcp_executions', 'integration_id',
  'MCP executions point at their integration');

-- ---------------------------------------------------------------------------------------
-- Queued Google syncs read the integrations (superuser: the function is not the API's)
-- ---------------------------------------------------------------------------------------
select lives_ok($$select private.queue_calendar_syncs()$$, 'calendar syncs are queued');
select results_eq(
  $$select ref from private.jobs where kind = 'calendar_sync'
      and ref in ('int_gc_a_live', 'int_gc_a_test', 'int_gc_b_live') order by ref$$,
  array['int_gc_a_live', 'int_gc_b_live'],
  'one calendar_sync job per connected live Google Calendar integration, none for the sandbox');
delete from private.jobs where kind = 'calendar_sync';

-- A sandbox integration older than 24 hours goes with the purge, its sync state with it.
insert into public.integrations (id, org_id, environment, provider, name, sealed_credentials,
    created_at) values
  ('int_gc_old_test', 'org_int_b', 'test', 'google_calendar', 'google_calendar', 'v1.x.y',
   now() - interval '25 hours');
insert into public.calendar_sync_state (integration_id, org_id, environment) values
  ('int_gc_old_test', 'org_int_b', 'test');
select private.purge_expired_data();
select is_empty(
  $$select 1 from public.calendar_sync_state where integration_id = 'int_gc_old_test'
    union all select 1 from public.integrations where id = 'int_gc_old_test'$$,
  'an old sandbox Google Calendar integration is purged with its sync state');
select results_eq(
  $$select count(*)::int from public.calendar_sync_state
    where integration_id in ('int_gc_a_live', 'int_gc_a_test', 'int_gc_b_live')$$, array[3],
  'recent sync states stay');
-- ---------------------------------------------------------------------------------------
-- As the API role, org A live
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_int_a","environment":"live"}';

select * from pg_temp.tenant_isolation('public.integrations', 'id',
  'int_gc_a_live', 'int_gc_a_test', 'int_gc_b_live', 'updated_at = now()', false);
select * from pg_temp.tenant_isolation('public.calendar_sync_state', 'integration_id',
  'int_gc_a_live', 'int_gc_a_test', 'int_gc_b_live', 'sync_token = null', true);

select throws_ok(
  $$insert into integrations (provider, name, sealed_credentials)
    values ('google_calendar', 'google_calendar', 'v1.a.b')$$,
  '23505', null, 'one active Google Calendar integration per organization and environment');
select throws_ok(
  $$insert into integrations (provider, name, sealed_credentials)
    values ('google_calendar', 'work', 'v1.a.b')$$,
  '23514', null, 'a singleton provider is named after itself only');
select throws_ok(
  $$insert into integrations (provider, name, sealed_credentials) values ('sms', 'sms', 'v1.a.b')$$,
  '23514', null, 'an unknown provider is refused');
select throws_ok(
  $$insert into integrations (provider, name, sealed_credentials) values ('email', 'email', null)$$,
  '23514', null, 'a channel has sealed credentials');
select throws_ok(
  $$insert into integrations (provider, name, sealed_credentials, public)
    values ('mcp', 'crm', '{"bearer_token":"in clear"}', '{}')$$,
  '23514', null, 'an MCP server''s credentials are stored sealed only');
select throws_ok(
  $$insert into integrations (provider, name, public) values ('mcp', 'Google Sheets', '{}')$$,
  '23514', null, 'an MCP server''s name is lower case letters, digits and _');
select lives_ok(
  $$insert into integrations (id, provider, name, sealed_credentials, public)
    values ('int_mcp_a_crm', 'mcp', 'crm', 'v1.a.b', '{"url": "https://crm.example/mcp"}')$$,
  'a second MCP server connects under its own name');
select throws_ok(
  $$insert into integrations (provider, name, public)
    values ('mcp', 'google_sheets', '{"url": "https://other.example/mcp"}')$$,
  '23505', null, 'one active MCP server per name');
select lives_ok(
  $$update integrations set status = 'disconnected', disconnected_at = now()
    where id = 'int_mcp_a_live'$$,
  'disconnecting an MCP server keeps its row');
select lives_ok(
  $$insert into integrations (provider, name, public)
    values ('mcp', 'google_sheets', '{"url": "https://other.example/mcp"}')$$,
  'its name connects again once disconnected');

select throws_ok(
  $$insert into calendar_sync_state (integration_id) values ('int_mcp_b_live')$$,
  '23503', null, 'a sync state cannot point at another organization''s integration');
select throws_ok(
  $$insert into mcp_executions (integration_id, provider, tool, parameters)
    values ('int_gc_a_test', 'google_sheets', 'read_range', '{}')$$,
  '23503', null, 'an MCP execution cannot point at another environment''s integration');
select lives_ok(
  $$insert into mcp_executions (integration_id, provider, tool, parameters)
    values ('int_mcp_a_crm', 'crm', 'lookup', '{}')$$,
  'an MCP execution points at its integration');

-- Org B sees its own integration only, and not A's MCP servers.
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_int_b","environment":"live"}';
select results_eq('select id from integrations order by id',
  array['int_gc_b_live', 'int_mcp_b_live'], 'org B sees its own integrations only');

select * from finish();
rollback;
