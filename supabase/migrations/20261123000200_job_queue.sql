-- The job queue behind workflow steps and webhook deliveries.
--
-- A job is due when available_at <= now(). Claiming it pushes available_at forward by the
-- lease and gives it a new lease_token: a worker that dies simply lets its lease run out and
-- the job is due again for any other worker. Every write a worker makes for a job checks the
-- token (private.hold_lease), so a worker whose lease ran out cannot overwrite the work of
-- the one that took over.

create table private.jobs (
  id bigint generated always as identity primary key,
  kind text not null check (kind in ('workflow', 'webhook')),
  -- What the job advances: a workflow instance id or a webhook delivery id.
  ref text not null,
  org_id text not null references public.organizations (id) on delete cascade,
  environment text not null check (environment in ('live', 'test')),
  available_at timestamptz not null default now(),
  lease_token uuid,
  -- Times claimed: a job whose worker keeps dying on it is given up (see the worker).
  claims int not null default 0,
  created_at timestamptz not null default now(),
  unique (kind, ref)
);
create index jobs_due_idx on private.jobs (available_at);
-- Service access only: no policy, no grant.
alter table private.jobs enable row level security;


-- Claims up to p_limit due jobs of the given kinds for p_lease_seconds. (plpgsql, not sql:
-- its plan is cached; a set-returning sql function would be planned on every call.)
create function private.claim_jobs(p_kinds text[], p_limit int, p_lease_seconds int)
returns setof private.jobs
language plpgsql volatile
set search_path = ''
as $$
begin
  return query
  with due as (
    select id from private.jobs
    where available_at <= now() and kind = any (p_kinds)
    order by available_at
    limit p_limit
    for update skip locked
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

-- Inside a worker's transaction: whether it still holds the job's lease. Extends the lease
-- and locks the job row until commit, so no other worker can claim it in between.
-- Security definer so a worker acting as `authenticated` for an organization can call it;
-- the random token is the capability.
create function private.hold_lease(p_job_id bigint, p_token uuid, p_lease_seconds int)
returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  update private.jobs
  set available_at = greatest(available_at, now() + make_interval(secs => p_lease_seconds))
  where id = p_job_id and lease_token = p_token;
  return found;
end
$$;

-- Gives the job back to run again at p_at (a retry's backoff, a durable delay). A planned
-- reschedule starts the claim count afresh; one after a handler crashed keeps it.
create function private.reschedule_job(
  p_job_id bigint, p_token uuid, p_at timestamptz, p_after_crash boolean default false
) returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  update private.jobs
  set available_at = p_at, lease_token = null,
      claims = case when p_after_crash then claims else 0 end
  where id = p_job_id and lease_token = p_token;
  return found;
end
$$;

-- The job is done.
create function private.finish_job(p_job_id bigint, p_token uuid) returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  delete from private.jobs where id = p_job_id and lease_token = p_token;
  return found;
end
$$;

grant execute on function private.hold_lease(bigint, uuid, int),
  private.reschedule_job(bigint, uuid, timestamptz, boolean), private.finish_job(bigint, uuid)
  to authenticated, service_role;
grant execute on function private.claim_jobs(text[], int, int) to service_role;

-- A job whose lease ran out is due again by itself (its available_at has passed), so no
-- worker waits for this; the sweep makes it visible (the row no longer looks held, and the
-- old token is void) and wakes the workers for it. pg_cron runs it every minute.
create function private.sweep_expired_leases() returns int
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  swept int;
begin
  update private.jobs set lease_token = null
  where lease_token is not null and available_at <= now();
  get diagnostics swept = row_count;
  if swept > 0 then
    perform pg_notify('bivelio_jobs', '');
  end if;
  return swept;
end
$$;
select cron.schedule('bivelio-sweep-expired-leases', '* * * * *',
  'select private.sweep_expired_leases()');

-- ---------------------------------------------------------------------------------------
-- Waking the worker edge function in production
-- ---------------------------------------------------------------------------------------
-- On Supabase no worker process runs all the time: pg_cron calls private.tick_workers()
-- every minute, and a new job calls it too (at most once a second), and it POSTs to the
-- `worker` function through pg_net when an operator has configured it:
--   insert into private.settings values
--     ('worker_url', 'https://<project>.supabase.co/functions/v1/worker'),
--     ('worker_secret', '<the BIVELIO_WORKER_SECRET of the functions>');
-- Locally the stack runs a worker process that LISTENs instead; pg_net is not installed.

create table private.settings (
  name text primary key,
  value text not null
);
alter table private.settings enable row level security;

create unlogged table private.worker_wakeups (
  id boolean primary key default true check (id),
  last_at timestamptz not null
);
alter table private.worker_wakeups enable row level security;

-- Returns whether a wake-up request was sent.
create function private.tick_workers(p_force boolean default true) returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  url text := (select value from private.settings where name = 'worker_url');
  secret text := (select value from private.settings where name = 'worker_secret');
begin
  if url is null or to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') is null then
    return false;
  end if;
  if not p_force then
    -- At most one wake-up per second from job inserts. Never wait for another
    -- transaction's wake-up (that would serialise every job insert): skip instead.
    if not pg_try_advisory_xact_lock(hashtext('bivelio.worker_wakeups')) then
      return false;
    end if;
    insert into private.worker_wakeups as w values (true, clock_timestamp())
    on conflict (id) do update set last_at = excluded.last_at
      where w.last_at < clock_timestamp() - interval '1 second';
    if not found then
      return false;
    end if;
  end if;
  execute 'select net.http_post(url => $1, body => $2, headers => $3, timeout_milliseconds => $4)'
    using url, '{}'::jsonb,
      jsonb_build_object('Content-Type', 'application/json',
                         'Authorization', 'Bearer ' || coalesce(secret, '')),
      5000;
  return true;
end
$$;

-- New jobs wake the workers at once instead of at their next poll: locally a NOTIFY on
-- the channel they LISTEN on, in production a call to the worker function. Statements that
-- inserted nothing (a fan-out to no webhook) wake nobody.
create function private.jobs_enqueued() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if exists (select from new_jobs) then
    perform pg_notify('bivelio_jobs', '');
    perform private.tick_workers(false);
  end if;
  return null;
end
$$;
create trigger jobs_enqueued after insert on private.jobs
  referencing new table as new_jobs
  for each statement execute function private.jobs_enqueued();

select cron.schedule('bivelio-tick-workers', '* * * * *', 'select private.tick_workers()');

-- Functions are executable by PUBLIC when created, and a per-schema default privilege
-- cannot take that away: revoke it here, so only the grants above apply.
revoke execute on all functions in schema private from public;
