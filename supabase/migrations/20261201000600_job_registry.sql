-- Job kinds as a registry (shared/job-kinds.ts), one way to retry and to finish, and jobs
-- that a workflow step waits for.
--
-- - The kind CHECK constraint goes: the registry in the code is the list of kinds (a job
--   of a kind no worker knows simply waits). Only the name's shape is checked.
-- - A job carries a `payload` (what to do, for kinds that have no row of their own to
--   point at), `attempts` (failed attempts so far, the retry policy's count) and
--   `last_error` (the newest failure, crash or not, as {code, message, details?}).
-- - private.retry_job is the one way to run a job again after a failure (the worker's
--   crash path included), private.reschedule_job the way to park it until a time without
--   a failure (a delay), private.finish_job the one way to end it, with its result or its
--   error. No handler writes private.jobs itself.
-- - A job can be waited for: private.queue_waited_job queues it for the job holding the
--   given lease and parks that job until it ends; finish_job then stores the outcome in
--   private.job_outcomes and makes the waiter due at once.
-- - Per-kind caps: private.claim_jobs takes, beside the kinds, how many jobs of each kind
--   the worker may still start, so a slow kind cannot take every slot of a worker.

alter table private.jobs drop constraint jobs_kind_check;
alter table private.jobs add constraint jobs_kind_name check (kind ~ '^[a-z][a-z0-9_]{0,62}$');
alter table private.jobs
  add column payload jsonb not null default '{}',
  add column attempts int not null default 0,
  add column last_error jsonb,
  -- The job that waits for this one's outcome (queue_waited_job), by its kind and ref.
  add column waiter_kind text,
  add column waiter_ref text,
  add constraint jobs_waiter check ((waiter_kind is null) = (waiter_ref is null));

-- Outcomes of jobs that were waited for, until their waiter has read them (a workflow's
-- are deleted when its instance ends). Service access only.
create table private.job_outcomes (
  kind text not null,
  ref text not null,
  waiter_kind text not null,
  waiter_ref text not null,
  org_id text not null references public.organizations (id) on delete cascade,
  environment text not null,
  result jsonb,
  -- {code, message, details?} when the job failed; null when it succeeded.
  error jsonb,
  finished_at timestamptz not null default now(),
  primary key (kind, ref)
);
create index job_outcomes_waiter_idx on private.job_outcomes (waiter_kind, waiter_ref);
alter table private.job_outcomes enable row level security;

-- ---------------------------------------------------------------------------------------
-- The fair claim, with per-kind caps
-- ---------------------------------------------------------------------------------------
-- As 20261201000200_fair_job_claim.sql (turns by held leases, per organization and kind,
-- then per organization), plus p_kind_limits: at most p_kind_limits[i] jobs of
-- p_kinds[i] in this claim (the worker passes the room each kind has left under its cap;
-- null: p_limit for every kind). The cap is applied to the candidates in turn order, before
-- the locks: a candidate skipped as locked makes the claim smaller, never larger than a cap.
drop function private.claim_jobs(text[], int, int);
create function private.claim_jobs(
  p_kinds text[], p_limit int, p_lease_seconds int, p_kind_limits int[] default null
) returns setof private.jobs
language plpgsql volatile
as $$
declare
  candidates bigint[];
begin
  with recursive queued_orgs (org_id) as (
    (select j.org_id from private.jobs j order by j.org_id limit 1)
    union all
    select (select j.org_id from private.jobs j where j.org_id > q.org_id
            order by j.org_id limit 1)
    from queued_orgs q
    where q.org_id is not null
  ),
  kinds as (
    select k.kind, least(p_limit, coalesce(k.room, p_limit)) as room
    from unnest(p_kinds, p_kind_limits) as k (kind, room)
    where k.kind is not null
  ),
  held_leases as (
    select j.org_id, j.kind, count(*) as leases
    from private.jobs j
    where j.lease_token is not null and j.available_at > now()
    group by j.org_id, j.kind
  ),
  kind_turns as (
    select d.id, q.org_id, k.kind, d.available_at,
           coalesce(h.leases, 0) + row_number() over (
             partition by q.org_id, k.kind order by d.available_at, d.id
           ) as kind_turn
    from queued_orgs q
    cross join kinds k
    cross join lateral (
      select j.id, j.available_at from private.jobs j
      where j.org_id = q.org_id and j.kind = k.kind and j.available_at <= now()
      order by j.available_at
      limit k.room
    ) d
    left join held_leases h on h.org_id = q.org_id and h.kind = k.kind
    where k.room > 0
  ),
  org_turns as (
    select t.id, t.kind, t.available_at,
           coalesce(h.leases, 0) + row_number() over (
             partition by t.org_id order by t.kind_turn, t.available_at, t.id
           ) as org_turn
    from kind_turns t
    left join (
      select org_id, sum(leases) as leases from held_leases group by org_id
    ) h on h.org_id = t.org_id
  ),
  capped as (
    select o.id, o.org_turn, o.available_at,
           row_number() over (partition by o.kind order by o.org_turn, o.available_at, o.id)
             as kind_rank,
           k.room
    from org_turns o join kinds k on k.kind = o.kind
  )
  select array_agg(id order by org_turn, available_at, id) into candidates
  from capped where kind_rank <= room;

  return query
  with due as (
    select j.id from unnest(candidates) with ordinality as c (id, turn)
    join private.jobs j on j.id = c.id
    where j.available_at <= now() and j.kind = any (p_kinds)
    order by c.turn
    limit p_limit
    for update of j skip locked
  )
  update private.jobs j
  set available_at = now() + make_interval(secs => p_lease_seconds),
      lease_token = gen_random_uuid(),
      claims = j.claims + 1
  from due
  where j.id = due.id
  returning j.*;
end
$$;
grant execute on function private.claim_jobs(text[], int, int, int[]) to service_role;

-- ---------------------------------------------------------------------------------------
-- Retry and finish
-- ---------------------------------------------------------------------------------------

-- Runs the job again at p_at after a failure, recording it as last_error. A planned retry
-- (the kind's retry policy, a step's retry) counts an attempt and starts the claim count
-- afresh; a retry after the handler crashed (p_after_crash) keeps the claim count, so a
-- job that crashes every time is given up after MAX_CLAIMS claims (see the worker).
create function private.retry_job(
  p_job_id bigint, p_token uuid, p_at timestamptz, p_error jsonb,
  p_after_crash boolean default false
) returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  update private.jobs
  set available_at = p_at, lease_token = null, last_error = p_error,
      attempts = attempts + case when p_after_crash then 0 else 1 end,
      claims = case when p_after_crash then claims else 0 end
  where id = p_job_id and lease_token = p_token;
  return found;
end
$$;

-- The job is done: with its result, or with its error when it failed for good. A job that
-- is waited for leaves its outcome for its waiter and wakes it.
drop function private.finish_job(bigint, uuid);
create function private.finish_job(
  p_job_id bigint, p_token uuid, p_result jsonb default null, p_error jsonb default null
) returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  done private.jobs;
begin
  delete from private.jobs where id = p_job_id and lease_token = p_token returning * into done;
  if not found then
    return false;
  end if;
  if done.waiter_kind is not null then
    insert into private.job_outcomes (kind, ref, waiter_kind, waiter_ref, org_id, environment,
                                      result, error)
    select done.kind, done.ref, done.waiter_kind, done.waiter_ref, done.org_id,
           done.environment, p_result, p_error
    where exists (select from private.jobs w
                  where w.kind = done.waiter_kind and w.ref = done.waiter_ref)
    on conflict (kind, ref) do nothing;
    update private.jobs set available_at = now()
    where kind = done.waiter_kind and ref = done.waiter_ref and lease_token is null;
    if found then
      perform pg_notify('bivelio_jobs', '');
    end if;
  end if;
  return true;
end
$$;

-- Queues a job of p_kind for the job holding p_waiter_token (same organization and
-- environment) and parks the waiter until it ends (finish_job wakes it). Returns the new
-- job's id, or null when the waiter's lease is lost. Queuing the same (kind, ref) twice
-- queues it once.
create function private.queue_waited_job(
  p_waiter_id bigint, p_waiter_token uuid, p_kind text, p_ref text, p_payload jsonb
) returns bigint
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  waiter private.jobs;
  queued bigint;
begin
  update private.jobs
  set available_at = 'infinity', lease_token = null, claims = 0
  where id = p_waiter_id and lease_token = p_waiter_token
  returning * into waiter;
  if not found then
    return null;
  end if;
  insert into private.jobs (kind, ref, org_id, environment, payload, waiter_kind, waiter_ref)
  values (p_kind, p_ref, waiter.org_id, waiter.environment, coalesce(p_payload, '{}'),
          waiter.kind, waiter.ref)
  on conflict (kind, ref) do nothing
  returning id into queued;
  return coalesce(queued, (select id from private.jobs where kind = p_kind and ref = p_ref));
end
$$;

grant execute on function private.retry_job(bigint, uuid, timestamptz, jsonb, boolean),
  private.finish_job(bigint, uuid, jsonb, jsonb),
  private.queue_waited_job(bigint, uuid, text, text, jsonb)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Webhook attempts: recorded here, retried and finished through the functions above
-- ---------------------------------------------------------------------------------------
-- As before (20261123000400_webhooks.sql) it records one attempt and decides the
-- delivery's status, but it no longer writes private.jobs: the worker's handler retries
-- or finishes the job in the same transaction, through retry_job/finish_job. The retry
-- schedule is the webhook job kind's retry policy (shared/webhooks/jobs.ts): the caller
-- passes p_retry_at, when the next automatic attempt would be, or null when the policy
-- has no attempt left (the delivery then fails and the webhook is disabled). Returns the
-- delivery's new status, 'missing' (deleted meanwhile) or 'lease_lost'. Called in the
-- job's tenant transaction (role authenticated, the job's organization and environment);
-- the lease token is the capability, as for the job functions.
drop function private.record_webhook_attempt(bigint, uuid, int, boolean, timestamptz, int,
  int, text, int[]);
create function private.record_webhook_attempt(
  p_job_id bigint, p_lease_token uuid,
  p_sent boolean, p_attempted_at timestamptz, p_status_code int, p_duration_ms int,
  p_error text, p_retry_at timestamptz
) returns text
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  delivery_id text;
  d public.webhook_deliveries;
  webhook_status text;
  success boolean := p_sent and coalesce(p_status_code between 200 and 299, false);
  gone boolean := p_sent and coalesce(p_status_code = 410, false);
  new_status text;
  next_at timestamptz;
  disable_reason text;
begin
  -- The job row first (locked, as private.hold_lease does), then webhook, then delivery.
  select ref into delivery_id from private.jobs
  where id = p_job_id and lease_token = p_lease_token and kind = 'webhook'
  for update;
  if not found then
    return 'lease_lost';
  end if;
  if p_sent and not success then
    perform from public.webhooks w
    where w.id = (select x.webhook_id from public.webhook_deliveries x where x.id = delivery_id)
    for no key update;
  end if;
  select * into d from public.webhook_deliveries where id = delivery_id for update;
  if not found then
    return 'missing';
  end if;
  select w.status into webhook_status from public.webhooks w where w.id = d.webhook_id;

  if not p_sent then
    if webhook_status = 'disabled' and not d.manual then
      update public.webhook_deliveries set status = 'held', next_attempt_at = null
      where id = d.id;
      return 'held';
    end if;
    return d.status;
  end if;

  if success then
    new_status := 'delivered';
  elsif gone and webhook_status = 'active' then
    new_status := 'failed';
    disable_reason := 'gone';
  elsif webhook_status = 'disabled' then
    new_status := 'held';
  elsif d.manual then
    new_status := 'failed';
  elsif p_retry_at is null then
    new_status := 'failed';
    disable_reason := 'failing';
  else
    new_status := 'pending';
    next_at := p_retry_at;
  end if;

  insert into public.webhook_attempts (delivery_id, attempt, org_id, environment, webhook_id,
    attempted_at, status_code, duration_ms, success, error, next_attempt_at, manual)
  values (d.id, d.attempt_count + 1, d.org_id, d.environment, d.webhook_id, p_attempted_at,
    p_status_code, p_duration_ms, success, p_error, next_at, d.manual);
  update public.webhook_deliveries set
    status = new_status,
    attempt_count = attempt_count + 1,
    cycle_attempts = case when d.manual then cycle_attempts else cycle_attempts + 1 end,
    manual = false,
    next_attempt_at = next_at,
    last_attempt_at = p_attempted_at
  where id = d.id;
  if disable_reason is not null then
    update public.webhooks
    set status = 'disabled', disabled_reason = disable_reason, disabled_at = now(),
        updated_at = now()
    where id = d.webhook_id and status = 'active';
  end if;
  return new_status;
end
$$;
grant execute on function private.record_webhook_attempt(bigint, uuid, boolean, timestamptz,
  int, int, text, timestamptz) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Workflows: a step that waits for a job, or for the result of a call it recorded
-- ---------------------------------------------------------------------------------------
-- {"job": {"kind", "ref"}}: the step waits for that job's outcome (queue_waited_job);
-- {"intent": {"attempt", "key"}}: the step's call was about to be made (an `intent` step
-- type): a crash after this commit and before the result's finds it and reconciles.
alter table public.workflow_step_runs add column waiting_on jsonb;

-- As in 20261123000300_workflows.sql, plus the outcomes of the jobs its steps waited for.
create or replace function private.workflow_instance_finished() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from private.jobs where kind = 'workflow' and ref = new.id;
  delete from private.job_outcomes where waiter_kind = 'workflow' and waiter_ref = new.id;
  perform pg_notify('bivelio_instance_finished', new.id);
  return null;
end
$$;

revoke execute on all functions in schema private from public;
