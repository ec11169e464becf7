-- One place to connect every third-party service: Google Calendar's connection
-- (public.calendar_connections) and the MCP servers (public.mcp_providers) become rows of
-- public.integrations, beside the messaging channels. The code is shared/integrations/
-- (kinds.ts: what each provider takes, shows, sets up and tears down).
--
-- - `channel` becomes `provider` (whatsapp, telegram, email, google_calendar, mcp), and
--   every integration has a `name`: the provider's own for the singletons, the name
--   `mcp/execute` calls for an MCP server (`google_sheets`). One active (connected or
--   broken) integration per organization, environment, provider and name: so one per
--   singleton provider, several MCP servers each under its own name.
-- - Sealed credentials move as they are (sealed by the functions with the same key; this
--   migration cannot open them): Google's {client_id, client_secret, refresh_token} and an
--   MCP server's {bearer_token?, headers?}. What is not secret goes in `public`: the
--   calendar id, the server URL. An MCP server without credentials had nothing sealed, so
--   only MCP rows may have none.
-- - The calendar keeps its own sync state (cached access token, sync token, last sync, the
--   calendar the sync token belongs to) in public.calendar_sync_state, keyed by the
--   integration: it changes on every Google call and sync, it is the calendar's business,
--   and the integration row stays the same for every provider.

alter table public.integrations rename column channel to provider;
alter table public.integrations drop constraint integrations_channel_check;
alter table public.integrations add constraint integrations_provider_check
  check (provider in ('whatsapp', 'telegram', 'email', 'google_calendar', 'mcp'));

alter table public.integrations add column name text;
update public.integrations set name = provider;
alter table public.integrations alter column name set not null;
alter table public.integrations add constraint integrations_name_check
  check (name ~ '^[a-z][a-z0-9_]{0,62}$' and (provider = 'mcp' or name = provider));

alter table public.integrations alter column sealed_credentials drop not null;
alter table public.integrations add constraint integrations_sealed_credentials_present
  check (sealed_credentials is not null or provider = 'mcp');

drop index public.integrations_active_channel_idx;
create unique index integrations_active_name_idx
  on public.integrations (org_id, environment, provider, name) where status <> 'disconnected';

-- ---------------------------------------------------------------------------------------
-- Google Calendar
-- ---------------------------------------------------------------------------------------

create table public.calendar_sync_state (
  integration_id text primary key,
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  -- The Google calendar events are written to and read from (the integration's).
  calendar_id text not null default 'primary' check (length(calendar_id) between 1 and 1024),
  -- The last access token Google gave, sealed, and when it expires (in clear, so the code
  -- knows when to refresh without opening it).
  sealed_access_token text check (sealed_access_token like 'v_.%'),
  access_token_expires_at timestamptz,
  -- Google's nextSyncToken after the last complete sync: the next sync asks only for changes.
  sync_token text,
  last_synced_at timestamptz,
  updated_at timestamptz not null default now(),
  foreign key (org_id, environment, integration_id)
    references public.integrations (org_id, environment, id) on delete cascade
);

alter table public.calendar_sync_state enable row level security;
revoke all on public.calendar_sync_state from anon, authenticated;
grant select, insert, update, delete on public.calendar_sync_state to authenticated;
create policy calendar_sync_state_own_org_env on public.calendar_sync_state
  for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

create temporary table moved_calendar_connections as
select c.*, private.new_id('int') as integration_id from public.calendar_connections c;

insert into public.integrations
  (id, org_id, environment, provider, name, status, sealed_credentials, public, error,
   created_at, updated_at)
select integration_id, org_id, environment, 'google_calendar', 'google_calendar', status,
       sealed_credentials, jsonb_build_object('calendar_id', calendar_id), error,
       created_at, updated_at
from moved_calendar_connections;

insert into public.calendar_sync_state
  (integration_id, org_id, environment, calendar_id, sealed_access_token,
   access_token_expires_at, sync_token, last_synced_at, updated_at)
select integration_id, org_id, environment, calendar_id, sealed_access_token,
       access_token_expires_at, sync_token, last_synced_at, updated_at
from moved_calendar_connections;

-- Queued syncs name their connection: they name its integration now.
update private.jobs j set ref = m.integration_id
from moved_calendar_connections m
where j.kind = 'calendar_sync' and j.ref = m.id;

-- Incremental sync from Google for every connected live Google Calendar integration: one
-- `calendar_sync` job per integration (ref: its id). Sandbox integrations never reach
-- Google, so they are not synced on a schedule.
create or replace function private.queue_calendar_syncs() returns int
language sql volatile security definer
set search_path = ''
as $$
  with queued as (
    insert into private.jobs (kind, ref, org_id, environment)
    select 'calendar_sync', i.id, i.org_id, i.environment
    from public.integrations i
    where i.provider = 'google_calendar' and i.status = 'connected' and i.environment = 'live'
    on conflict (kind, ref) do nothing
    returning 1
  )
  select count(*)::int from queued;
$$;
revoke execute on function private.queue_calendar_syncs() from public;

-- ---------------------------------------------------------------------------------------
-- MCP
-- ---------------------------------------------------------------------------------------

create temporary table moved_mcp_providers as
select p.*, private.new_id('int') as integration_id from public.mcp_providers p;

insert into public.integrations
  (id, org_id, environment, provider, name, sealed_credentials, public, created_at, updated_at)
select integration_id, org_id, environment, 'mcp', name, sealed_credentials,
       jsonb_build_object('url', url), created_at, updated_at
from moved_mcp_providers;

-- An execution points at the integration it called (kept, by name, when it goes).
alter table public.mcp_executions add column integration_id text;
update public.mcp_executions e set integration_id = m.integration_id
from moved_mcp_providers m where e.provider_id = m.id;
alter table public.mcp_executions drop column provider_id;
alter table public.mcp_executions add foreign key (org_id, environment, integration_id)
  references public.integrations (org_id, environment, id) on delete set null (integration_id);
create index mcp_executions_integration_idx on public.mcp_executions (integration_id)
  where integration_id is not null;

-- ---------------------------------------------------------------------------------------
-- The old tables go. The calendar's sync state is not in the sandbox purge list: it goes with
-- its integration (on delete cascade), which is.
-- ---------------------------------------------------------------------------------------

delete from private.sandbox_tables
where table_name in ('public.calendar_connections'::regclass, 'public.mcp_providers'::regclass);
drop table public.calendar_connections;
drop table public.mcp_providers;

drop table moved_calendar_connections;
drop table moved_mcp_providers;
