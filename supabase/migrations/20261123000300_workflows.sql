-- Workflows: definitions with immutable versions, instances that run one version, and
-- per-step records. An inserted instance is a queued job (trigger below); cron-triggered
-- workflows are started by pg_cron, event-triggered ones by events in the outbox.

create table public.workflows (
  id text primary key default private.new_id('wf'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  name text not null check (length(name) between 1 and 200),
  description text not null default '' check (length(description) <= 2000),
  status text not null default 'active' check (status in ('active', 'inactive', 'archived')),
  trigger_type text not null default 'manual' check (trigger_type in ('manual', 'cron', 'event')),
  cron_expression text,
  timezone text,
  trigger_events text[],
  concurrency text not null default 'parallel' check (concurrency in ('single', 'parallel')),
  -- The current version; editing the steps adds a version, running instances keep theirs.
  version int not null default 1,
  -- The minute a cron trigger last fired, so a minute never fires twice.
  last_cron_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((trigger_type = 'cron') = (cron_expression is not null and timezone is not null)),
  check ((trigger_type = 'event') = (cardinality(trigger_events) > 0))
);
create index workflows_list_idx on public.workflows (org_id, environment, created_at desc, id desc);
create index workflows_event_trigger_idx on public.workflows (org_id, environment)
  where trigger_type = 'event' and status = 'active';
create index workflows_cron_trigger_idx on public.workflows (id)
  where trigger_type = 'cron' and status = 'active';

create table public.workflow_versions (
  workflow_id text not null references public.workflows (id) on delete cascade,
  version int not null,
  org_id text not null default private.request_org_id(),
  environment text not null default private.request_environment(),
  steps jsonb not null check (jsonb_typeof(steps) = 'array' and jsonb_array_length(steps) > 0),
  created_at timestamptz not null default now(),
  primary key (workflow_id, version)
);

create table public.workflow_instances (
  id text primary key default private.new_id('wfi'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  workflow_id text not null,
  workflow_version int not null,
  -- Copied from the workflow's concurrency = 'single' when the instance starts.
  exclusive boolean not null default false,
  status text not null default 'running'
    check (status in ('pending', 'running', 'completed', 'failed', 'cancelled')),
  current_step int not null default 1,
  total_steps int not null,
  input jsonb not null default '{}',
  output jsonb,
  error jsonb,
  -- How it started: {"type": "manual"}, {"type": "cron", "scheduled_for": …},
  -- {"type": "event", "event": …, "event_id": …}.
  trigger jsonb not null default '{"type": "manual"}',
  -- How many workflow runs led to this one through events (loops are cut off).
  chain_depth int not null default 0 check (chain_depth >= 0),
  created_at timestamptz not null default clock_timestamp(),
  started_at timestamptz not null default clock_timestamp(),
  updated_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  foreign key (workflow_id, workflow_version)
    references public.workflow_versions (workflow_id, version)
);
-- A single-concurrency workflow has at most one unfinished instance.
create unique index workflow_instances_single_idx on public.workflow_instances (workflow_id)
  where exclusive and status in ('pending', 'running');
create index workflow_instances_list_idx
  on public.workflow_instances (org_id, environment, created_at desc, id desc);
create index workflow_instances_workflow_idx
  on public.workflow_instances (workflow_id, created_at desc, id desc);

create table public.workflow_step_runs (
  instance_id text not null references public.workflow_instances (id) on delete cascade,
  step_id text not null,
  position int not null,
  type text not null,
  org_id text not null default private.request_org_id(),
  environment text not null default private.request_environment(),
  status text not null
    check (status in ('running', 'waiting', 'retrying', 'completed', 'failed', 'skipped')),
  attempts int not null default 0,
  output jsonb,
  error jsonb,
  started_at timestamptz,
  finished_at timestamptz,
  -- A retry's or a delay's next run.
  resume_at timestamptz,
  primary key (instance_id, step_id)
);

-- ---------------------------------------------------------------------------------------
-- Row-level security: each organization and environment sees and changes only its own.
-- ---------------------------------------------------------------------------------------
alter table public.workflows enable row level security;
alter table public.workflow_versions enable row level security;
alter table public.workflow_instances enable row level security;
alter table public.workflow_step_runs enable row level security;
revoke all on public.workflows, public.workflow_versions, public.workflow_instances,
  public.workflow_step_runs from anon, authenticated;
grant select, insert, update on public.workflows, public.workflow_instances,
  public.workflow_step_runs to authenticated;
grant select, insert on public.workflow_versions to authenticated;

create policy workflows_own_org_env on public.workflows for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));
create policy workflow_versions_own_org_env on public.workflow_versions for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment())
              and exists (select from public.workflows w where w.id = workflow_id));
create policy workflow_instances_own_org_env on public.workflow_instances for all
  to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment())
              and exists (select from public.workflows w where w.id = workflow_id));
create policy workflow_step_runs_own_org_env on public.workflow_step_runs for all
  to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment())
              and exists (select from public.workflow_instances i where i.id = instance_id));

-- ---------------------------------------------------------------------------------------
-- Starting and finishing instances
-- ---------------------------------------------------------------------------------------

-- The one way an instance starts (execute, cron, events). Runs with the caller's rights:
-- through the API that is RLS as the caller; from pg_cron and the events trigger it is the
-- owner, who names the organization explicitly. Returns no row when the workflow is not
-- visible or not active. A second unfinished instance of a single-concurrency workflow
-- raises unique_violation on workflow_instances_single_idx.
create function private.start_workflow_instance(
  p_workflow_id text, p_input jsonb, p_trigger jsonb, p_chain_depth int default 0
) returns setof public.workflow_instances
language plpgsql volatile  -- not sql: a plpgsql function's plan is cached
set search_path = ''
as $$
begin
  return query
  insert into public.workflow_instances (org_id, environment, workflow_id, workflow_version,
    exclusive, total_steps, input, trigger, chain_depth)
  select w.org_id, w.environment, w.id, w.version, w.concurrency = 'single',
         jsonb_array_length(v.steps), p_input, p_trigger, p_chain_depth
  from public.workflows w
  join public.workflow_versions v on v.workflow_id = w.id and v.version = w.version
  where w.id = p_workflow_id and w.status = 'active'
  returning *;
end
$$;
grant execute on function private.start_workflow_instance(text, jsonb, jsonb, int)
  to authenticated, service_role;

-- An instance row is its job: inserting one queues it for the workers.
create function private.queue_workflow_instance() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into private.jobs (kind, ref, org_id, environment)
  values ('workflow', new.id, new.org_id, new.environment);
  return null;
end
$$;
create trigger workflow_instances_queue after insert on public.workflow_instances
  for each row when (new.status in ('pending', 'running'))
  execute function private.queue_workflow_instance();

-- Cancelling locks the instance's job row first, as the worker does before it touches the
-- instance, so a cancel and a worker's commit never deadlock.
create function private.lock_workflow_job(p_instance_id text) returns void
language sql volatile security definer
set search_path = ''
as $$
  select from private.jobs j
  where j.kind = 'workflow' and j.ref = p_instance_id
    and exists (select from public.workflow_instances i
                where i.id = p_instance_id and i.org_id = private.request_org_id()
                  and i.environment = private.request_environment())
  for update of j
$$;
grant execute on function private.lock_workflow_job(text) to authenticated;

-- A finished (or cancelled) instance needs no job any more, and sync `execute` calls that
-- wait for it are told on the `bivelio_instance_finished` channel.
create function private.workflow_instance_finished() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from private.jobs where kind = 'workflow' and ref = new.id;
  perform pg_notify('bivelio_instance_finished', new.id);
  return null;
end
$$;
create trigger workflow_instances_finished after update of status on public.workflow_instances
  for each row
  when (old.status in ('pending', 'running')
        and new.status in ('completed', 'failed', 'cancelled'))
  execute function private.workflow_instance_finished();

-- ---------------------------------------------------------------------------------------
-- Event triggers
-- ---------------------------------------------------------------------------------------

-- Events written by a workflow's steps carry its chain depth (the worker sets
-- bivelio.chain_depth in its transaction), so a workflow triggered by an event its own
-- run caused (contact.created → create_contact → contact.created …) is cut off.
alter table public.events add column chain_depth int not null
  default coalesce(nullif(current_setting('bivelio.chain_depth', true), '')::int, 0)
  check (chain_depth >= 0);

create function private.start_event_workflows() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  workflow record;
  max_chain_depth constant int := 5;
begin
  if new.chain_depth >= max_chain_depth then
    return null;
  end if;
  for workflow in
    select w.id from public.workflows w
    where w.org_id = new.org_id and w.environment = new.environment
      and w.trigger_type = 'event' and w.status = 'active'
      and new.type = any (w.trigger_events)
  loop
    begin
      perform private.start_workflow_instance(
        workflow.id,
        jsonb_build_object('event', new.type, 'event_id', new.id, 'data', new.data),
        jsonb_build_object('type', 'event', 'event', new.type, 'event_id', new.id),
        new.chain_depth + 1);
    exception when unique_violation then
      null;  -- a single-concurrency workflow already running skips this event
    end;
  end loop;
  return null;
end
$$;
create trigger events_start_workflows after insert on public.events
  for each row execute function private.start_event_workflows();

-- ---------------------------------------------------------------------------------------
-- Cron triggers
-- ---------------------------------------------------------------------------------------

-- Starts every active cron workflow whose expression matches the minute of p_at in its
-- time zone, once per minute. pg_cron calls it every minute; tests call it with a time.
create function private.start_cron_workflows(p_at timestamptz default now())
returns int
language plpgsql volatile
set search_path = ''
as $$
declare
  minute timestamptz := date_trunc('minute', p_at);
  workflow record;
  started int := 0;
begin
  for workflow in
    select w.id, w.cron_expression, w.timezone from public.workflows w
    where w.trigger_type = 'cron' and w.status = 'active'
      and (w.last_cron_at is null or w.last_cron_at < minute)
    for update skip locked
  loop
    continue when not private.cron_matches(workflow.cron_expression,
                                            minute at time zone workflow.timezone);
    update public.workflows set last_cron_at = minute where id = workflow.id;
    begin
      perform private.start_workflow_instance(
        workflow.id,
        jsonb_build_object('scheduled_for', to_char(minute at time zone 'UTC',
                                                    'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
        jsonb_build_object('type', 'cron', 'scheduled_for', minute));
      started := started + 1;
    exception when unique_violation then
      null;  -- the previous run of a single-concurrency workflow is still going
    end;
  end loop;
  return started;
end
$$;
grant execute on function private.start_cron_workflows(timestamptz) to service_role;

select cron.schedule('bivelio-start-cron-workflows', '* * * * *',
  'select private.start_cron_workflows()');

-- Sandbox workflows and runs go with the rest of the sandbox data after 24 hours.
create or replace function private.purge_expired_data() returns void
language sql volatile
set search_path = ''
as $$
  delete from private.idempotency_keys where created_at < now() - interval '24 hours';
  delete from private.rate_limit_counters where minute_start < now() - interval '2 minutes';
  delete from public.events where environment = 'test' and created_at < now() - interval '24 hours';
  delete from public.workflow_instances
    where environment = 'test' and created_at < now() - interval '24 hours';
  delete from public.workflows
    where environment = 'test' and created_at < now() - interval '24 hours'
      and not exists (select from public.workflow_instances i where i.workflow_id = workflows.id);
  delete from public.contacts where environment = 'test' and created_at < now() - interval '24 hours';
$$;

-- Functions are executable by PUBLIC when created, and a per-schema default privilege
-- cannot take that away: revoke it here, so only the grants above apply.
revoke execute on all functions in schema private from public;
