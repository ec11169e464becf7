-- MCP tool execution: the MCP servers an organization connects per environment (a name
-- such as `google_sheets`, a Streamable HTTP URL and sealed credentials) and every tool
-- execution made through them (shared/mcp/). Row-level security by org_id and environment,
-- like contacts.
--
-- The providers live here, not in public.integrations: that table holds one connection per
-- channel and organization (messaging), while an organization connects several MCP servers,
-- each under its own name. A later step may fold them into integrations.
--
-- Credentials are sealed by the functions (AES-GCM with BIVELIO_SECRETS_KEY,
-- shared/platform/secrets.ts) before they reach this table: sealed text only.

create table public.mcp_providers (
  id text primary key default private.new_id('mcpp'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  -- What `execute` names as `provider`.
  name text not null check (name ~ '^[a-z][a-z0-9_]{0,62}$'),
  -- The server's Streamable HTTP endpoint; checked by the private-network guard when saved
  -- and again at every call.
  url text not null check (length(url) between 1 and 2048),
  -- {bearer_token?, headers?} sealed; null for a server without authentication.
  sealed_credentials text check (sealed_credentials like 'v_.%'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, environment, name),
  unique (org_id, environment, id)
);

alter table public.mcp_providers enable row level security;
revoke all on public.mcp_providers from anon, authenticated;
grant select, insert, update, delete on public.mcp_providers to authenticated;
create policy mcp_providers_own_org_env on public.mcp_providers for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

create table public.mcp_executions (
  id text primary key default private.new_id('mcp'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  -- The provider by name as it was called (kept when the provider is disconnected).
  provider_id text,
  provider text not null check (length(provider) between 1 and 63),
  tool text not null check (length(tool) between 1 and 200),
  parameters jsonb not null check (jsonb_typeof(parameters) = 'object'),
  status text not null default 'running' check (status in ('running', 'completed', 'failed')),
  -- Sandbox: a tool not annotated read-only was not called; its answer is simulated.
  simulated boolean not null default false,
  -- Bytes of the result's JSON (the result itself is answered, not kept).
  result_bytes int check (result_bytes >= 0),
  duration_ms int check (duration_ms >= 0),
  -- {code, message, details?} of a failed execution.
  error jsonb check (jsonb_typeof(error) = 'object'),
  -- A workflow step's job ref: a job run again after a crash finds its execution.
  request_key text check (length(request_key) between 1 and 300),
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  foreign key (org_id, environment, provider_id)
    references public.mcp_providers (org_id, environment, id) on delete set null (provider_id),
  unique (org_id, environment, request_key),
  check ((status = 'running') = (completed_at is null))
);
create index mcp_executions_list_idx
  on public.mcp_executions (org_id, environment, created_at desc, id desc);
create index mcp_executions_provider_idx on public.mcp_executions (provider_id)
  where provider_id is not null;
create index mcp_executions_running_idx
  on public.mcp_executions (created_at) where status = 'running';

alter table public.mcp_executions enable row level security;
revoke all on public.mcp_executions from anon, authenticated;
grant select, insert, update on public.mcp_executions to authenticated;
create policy mcp_executions_own_org_env on public.mcp_executions for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- Sandbox providers and executions go after 24 hours with the rest (executions first).
insert into private.sandbox_tables (table_name, purge_order) values
  ('public.mcp_executions', 28),
  ('public.mcp_providers', 39);

-- Executions left running: the process died during the call. A call ends within its
-- timeout (well under 10 minutes), so one still running after that is failed.
create function private.fail_abandoned_mcp_executions(
  p_older_than interval default interval '10 minutes'
) returns int
language sql volatile
set search_path = ''
as $$
  with failed as (
    update public.mcp_executions
    set status = 'failed', completed_at = now(),
        duration_ms = (extract(epoch from now() - created_at) * 1000)::int,
        error = jsonb_build_object('code', 'EXECUTION_ABANDONED',
          'message', 'The execution did not finish (the server stopped during the tool call).')
    where status = 'running' and created_at < now() - p_older_than
    returning 1
  )
  select count(*)::int from failed
$$;
revoke execute on function private.fail_abandoned_mcp_executions(interval) from public;

select cron.schedule('bivelio-fail-abandoned-mcp-executions', '* * * * *',
  'select private.fail_abandoned_mcp_executions()');
