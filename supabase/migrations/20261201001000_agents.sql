-- AI agents: an agent is a model, instructions and an output JSON schema; invoking it runs
-- Gemini with that schema as the response schema. Every invocation is an execution row,
-- inserted `running` in the transaction that debits its credits, and completed or failed
-- (with a refund) in a second transaction after the Gemini call (shared/agents/).
-- Row-level security by org_id and environment, like contacts.

create table public.agents (
  id text primary key default private.new_id('ag'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  name text not null check (length(name) between 1 and 200),
  description text not null default '' check (length(description) <= 2000),
  category text not null default 'general' check (length(category) between 1 and 50),
  model text not null default 'gemini-2.5-flash' check (length(model) between 1 and 100),
  instructions text not null default '' check (length(instructions) <= 100000),
  -- Checked (by the API) against every invoke's input; null accepts any input.
  input_schema jsonb,
  -- Sent to Gemini as the response schema; every answer is checked against it.
  output_schema jsonb not null,
  temperature double precision not null default 1 check (temperature between 0 and 2),
  status text not null default 'active' check (status in ('active', 'inactive', 'archived')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, environment, id)
);
create index agents_list_idx on public.agents (org_id, environment, created_at desc, id desc);

alter table public.agents enable row level security;
revoke all on public.agents from anon, authenticated;
grant select, insert, update on public.agents to authenticated;
create policy agents_own_org_env on public.agents for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

create table public.agent_executions (
  id text primary key default private.new_id('age'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  agent_id text not null,
  -- The model the execution used (an agent's model may change later).
  model text not null,
  input jsonb not null,
  output jsonb,
  status text not null default 'running' check (status in ('running', 'completed', 'failed')),
  prompt_tokens int not null default 0 check (prompt_tokens >= 0),
  output_tokens int not null default 0 check (output_tokens >= 0),
  total_tokens int not null default 0 check (total_tokens >= 0),
  -- Credits charged: the debit while running and when completed, 0 once refunded.
  credits int not null default 0 check (credits >= 0),
  duration_ms int check (duration_ms >= 0),
  -- {code, message, details?} of a failed execution.
  error jsonb,
  -- A workflow step's `<instance>.<step>` key: a retried step finds its execution instead
  -- of invoking (and charging) again. Null for API invokes.
  request_key text check (length(request_key) between 1 and 300),
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  -- An execution belongs to an agent of the same organization and environment.
  foreign key (org_id, environment, agent_id)
    references public.agents (org_id, environment, id) on delete cascade,
  unique (org_id, environment, request_key),
  check ((status = 'running') = (completed_at is null))
);
-- list_executions (newest first), and the per-agent figures of `list`: invocations today
-- (created_at range) and the average latency of the latest completed executions.
create index agent_executions_list_idx
  on public.agent_executions (org_id, environment, created_at desc, id desc);
create index agent_executions_agent_idx
  on public.agent_executions (agent_id, created_at desc);
create index agent_executions_agent_completed_idx
  on public.agent_executions (agent_id, completed_at desc) where status = 'completed';
-- The sweep below looks only at what is still running.
create index agent_executions_running_idx
  on public.agent_executions (created_at) where status = 'running';

alter table public.agent_executions enable row level security;
revoke all on public.agent_executions from anon, authenticated;
grant select, insert, update on public.agent_executions to authenticated;
create policy agent_executions_own_org_env on public.agent_executions for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- Sandbox agents and executions go after 24 hours with the rest (executions first).
insert into private.sandbox_tables (table_name, purge_order) values
  ('public.agent_executions', 25),
  ('public.agents', 35);

-- ---------------------------------------------------------------------------------------
-- Executions left running: the process died between the debit and the record (a crash,
-- a deploy). A Gemini call ends well within 10 minutes (timeout and retries included), so
-- an execution still running after that is failed, its credits refunded (refund_credits
-- gives a debit back at most once) and agent.executed written, as a failure would have.
-- ---------------------------------------------------------------------------------------

create function private.fail_abandoned_agent_executions(
  p_older_than interval default interval '10 minutes'
) returns int
language plpgsql volatile
set search_path = ''
as $$
declare
  execution record;
  failed int := 0;
  abandoned jsonb := jsonb_build_object(
    'code', 'EXECUTION_ABANDONED',
    'message', 'The execution did not finish (the server stopped during the model call); its credits were refunded.');
begin
  for execution in
    select e.id, e.org_id, e.environment, e.agent_id, e.created_at
    from public.agent_executions e
    where e.status = 'running' and e.created_at < now() - p_older_than
    order by e.created_at
    for update skip locked
  loop
    -- refund_credits acts for the organization and environment in the claims.
    perform set_config('request.jwt.claims', jsonb_build_object(
      'org_id', execution.org_id, 'environment', execution.environment)::text, true);
    perform private.refund_credits(execution.id);
    update public.agent_executions
    set status = 'failed', credits = 0, error = abandoned, completed_at = now(),
        duration_ms = (extract(epoch from now() - execution.created_at) * 1000)::int
    where id = execution.id;
    insert into public.events (org_id, environment, type, data)
    select e.org_id, e.environment, 'agent.executed', jsonb_build_object(
      'execution_id', e.id, 'agent_id', e.agent_id, 'agent_name', a.name,
      'status', 'failed', 'output', null, 'tokens_used', e.total_tokens,
      'credits_consumed', 0, 'duration_ms', e.duration_ms,
      'completed_at', to_char(e.completed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'error', abandoned)
    from public.agent_executions e join public.agents a on a.id = e.agent_id
    where e.id = execution.id;
    failed := failed + 1;
  end loop;
  perform set_config('request.jwt.claims', '', true);
  return failed;
end
$$;
revoke execute on function private.fail_abandoned_agent_executions(interval) from public;

select cron.schedule('bivelio-fail-abandoned-agent-executions', '* * * * *',
  'select private.fail_abandoned_agent_executions()');
