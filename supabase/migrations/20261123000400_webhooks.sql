-- Outbound webhooks: endpoints, their signing secrets, and the deliveries the events outbox
-- fans out to them. A pending delivery is a job in private.jobs (kind 'webhook'); the
-- worker sends it (shared/webhooks/delivery-job.ts) and records every attempt.
--
-- Delivery statuses:
--   pending    queued: its job runs at next_attempt_at (now, or a retry's time)
--   delivered  a 2xx answer
--   failed     the retries ran out (the webhook was disabled with it), 410 Gone, or a manual
--              attempt (redeliver, test) failed
--   held       the webhook is disabled: kept, and queued again when it is reactivated
--
-- Locks: a delivery is locked only after its webhook and its job (API status changes take
-- webhook → job → delivery, redeliver job → delivery, the worker job → webhook →
-- delivery), and the API never waits for a job a worker has claimed (inserts do nothing on
-- conflict, deletes skip claimed jobs), so these paths cannot deadlock one another.

-- Every organization-scoped write here needs the admin scope, as the API does: an API key
-- whose claims carry it (set by the API, never by a user), or a signed-in owner/admin
-- (checked against the membership table at call time). Dashboard users can reach public
-- tables through PostgREST with their JWT; members can read webhooks, not point them
-- elsewhere.
create function private.request_can_admin() returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce((auth.jwt() -> 'scopes') ? 'admin', false) or private.is_org_admin()
$$;

-- ---------------------------------------------------------------------------------------
-- Webhooks
-- ---------------------------------------------------------------------------------------

create table public.webhooks (
  id text primary key default private.new_id('wh'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  url text not null check (length(url) between 1 and 2048),
  events text[] not null check (
    cardinality(events) > 0 and events <@ array[
      'workflow.completed', 'workflow.failed', 'message.received', 'message.sent',
      'contact.created', 'contact.updated', 'invoice.created', 'invoice.paid',
      'case.created', 'case.updated', 'agent.executed', 'document.processed'
    ]::text[]
  ),
  description text not null default '' check (length(description) <= 500),
  status text not null default 'active' check (status in ('active', 'disabled')),
  -- Why it was disabled: 'failing' (a delivery's 5th attempt failed), 'gone' (410), 'manual'.
  disabled_reason text check (disabled_reason in ('failing', 'gone', 'manual')),
  disabled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, environment, id),
  check ((status = 'disabled') = (disabled_at is not null and disabled_reason is not null))
);
create index webhooks_list_idx on public.webhooks (org_id, environment, created_at desc, id desc);

-- Signing secrets. The newest (expires_at null) signs; a replaced one keeps signing beside
-- it until expires_at. Not readable by the API role at all: the API writes them through
-- private.set_webhook_secret and only the worker (service connection) reads them.
create table private.webhook_secrets (
  webhook_id text not null references public.webhooks (id) on delete cascade,
  secret text not null,
  created_at timestamptz not null default clock_timestamp(),
  expires_at timestamptz,
  primary key (webhook_id, created_at)
);
alter table private.webhook_secrets enable row level security;

-- ---------------------------------------------------------------------------------------
-- Deliveries and their attempts
-- ---------------------------------------------------------------------------------------

create table public.webhook_deliveries (
  id text primary key default private.new_id('whd'),
  org_id text not null default private.request_org_id(),
  environment text not null default private.request_environment(),
  webhook_id text not null,
  -- The outbox event; null for a test event, whose data is test_data. Not a foreign key:
  -- sandbox events and their deliveries are purged together.
  event_id text,
  event_type text not null,
  test_data jsonb,
  status text not null default 'pending'
    check (status in ('pending', 'delivered', 'failed', 'held')),
  -- The next attempt was asked for (redeliver, test): one attempt, no retries, and it does
  -- not count towards deactivation.
  manual boolean not null default false,
  -- Automatic attempts in the current retry cycle; the cycle starts again when held
  -- deliveries are released by a reactivation.
  cycle_attempts int not null default 0,
  attempt_count int not null default 0,
  next_attempt_at timestamptz,
  last_attempt_at timestamptz,
  created_at timestamptz not null default now(),
  foreign key (org_id, environment, webhook_id)
    references public.webhooks (org_id, environment, id) on delete cascade,
  check ((event_id is null) = (test_data is not null))
);
create index webhook_deliveries_list_idx
  on public.webhook_deliveries (org_id, environment, created_at desc, id desc);
create index webhook_deliveries_webhook_idx
  on public.webhook_deliveries (webhook_id, created_at desc, id desc);
create index webhook_deliveries_waiting_idx on public.webhook_deliveries (webhook_id, status)
  where status in ('pending', 'held');

create table public.webhook_attempts (
  delivery_id text not null references public.webhook_deliveries (id) on delete cascade,
  attempt int not null,
  org_id text not null,
  environment text not null,
  webhook_id text not null,
  attempted_at timestamptz not null,
  -- Null when no HTTP answer came (refused target, timeout, connection error).
  status_code int,
  duration_ms int not null,
  success boolean not null,
  error text,
  -- When the next automatic attempt was scheduled by this one's failure.
  next_attempt_at timestamptz,
  manual boolean not null default false,
  primary key (delivery_id, attempt)
);
create index webhook_attempts_webhook_idx
  on public.webhook_attempts (webhook_id, attempted_at desc);

-- ---------------------------------------------------------------------------------------
-- Row-level security: each organization and environment sees its own; writes need admin.
-- ---------------------------------------------------------------------------------------
alter table public.webhooks enable row level security;
alter table public.webhook_deliveries enable row level security;
alter table public.webhook_attempts enable row level security;
revoke all on public.webhooks, public.webhook_deliveries, public.webhook_attempts
  from anon, authenticated;
grant select, insert, update, delete on public.webhooks to authenticated;
grant select, insert, update on public.webhook_deliveries to authenticated;
grant select, insert on public.webhook_attempts to authenticated;

create policy webhooks_read on public.webhooks for select to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()));
create policy webhooks_admin_insert on public.webhooks for insert to authenticated
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment())
              and (select private.request_can_admin()));
create policy webhooks_admin_update on public.webhooks for update to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment())
         and (select private.request_can_admin()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));
create policy webhooks_admin_delete on public.webhooks for delete to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment())
         and (select private.request_can_admin()));

create policy webhook_deliveries_read on public.webhook_deliveries for select to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()));
create policy webhook_deliveries_admin_insert on public.webhook_deliveries for insert
  to authenticated
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment())
              and (select private.request_can_admin()));
create policy webhook_deliveries_admin_update on public.webhook_deliveries for update
  to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment())
         and (select private.request_can_admin()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

create policy webhook_attempts_read on public.webhook_attempts for select to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()));
create policy webhook_attempts_admin_insert on public.webhook_attempts for insert
  to authenticated
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment())
              and (select private.request_can_admin()));

-- ---------------------------------------------------------------------------------------
-- Secrets
-- ---------------------------------------------------------------------------------------

-- Makes p_secret the signing secret of a webhook the caller administers. The one it
-- replaces keeps signing for 24 hours; one replaced before that stops at once (at most two
-- secrets sign at a time). Returns when the replaced one stops (null for the first
-- secret), or no row when the webhook is not the caller's.
create function private.set_webhook_secret(p_webhook_id text, p_secret text)
returns table (previous_expires_at timestamptz)
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform from public.webhooks w
  where w.id = p_webhook_id and w.org_id = private.request_org_id()
    and w.environment = private.request_environment()
  for no key update;
  if not found or not private.request_can_admin() then
    return;
  end if;
  delete from private.webhook_secrets s
  where s.webhook_id = p_webhook_id and s.expires_at is not null;
  update private.webhook_secrets s set expires_at = now() + interval '24 hours'
  where s.webhook_id = p_webhook_id and s.expires_at is null
  returning s.expires_at into previous_expires_at;
  insert into private.webhook_secrets (webhook_id, secret) values (p_webhook_id, p_secret);
  return next;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Fan-out: every outbox event makes one delivery per subscribed webhook of its
-- organization and environment, in the event's own transaction.
-- ---------------------------------------------------------------------------------------

create function private.fan_out_events_to_webhooks() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.webhook_deliveries (org_id, environment, webhook_id, event_id, event_type,
                                         status, next_attempt_at, created_at)
  select e.org_id, e.environment, w.id, e.id, e.type,
         case when w.status = 'active' then 'pending' else 'held' end,
         case when w.status = 'active' then e.created_at end,
         e.created_at
  from new_events e
  join public.webhooks w
    on w.org_id = e.org_id and w.environment = e.environment and e.type = any (w.events);
  return null;
end
$$;
create trigger events_fan_out_to_webhooks after insert on public.events
  referencing new table as new_events
  for each statement execute function private.fan_out_events_to_webhooks();

-- A pending delivery inserted (fan-out, test) is a queued job.
create function private.queue_new_webhook_deliveries() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into private.jobs (kind, ref, org_id, environment)
  select 'webhook', d.id, d.org_id, d.environment from new_deliveries d
  where d.status = 'pending';
  return null;
end
$$;
create trigger webhook_deliveries_queue after insert on public.webhook_deliveries
  referencing new table as new_deliveries
  for each statement execute function private.queue_new_webhook_deliveries();

-- Deleted deliveries (their webhook deleted, sandbox purge) need no job any more. Jobs a
-- worker has claimed are left to it: it finds the delivery gone and finishes the job.
create function private.drop_webhook_delivery_jobs() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from private.jobs j using old_deliveries d
  where j.kind = 'webhook' and j.ref = d.id and j.lease_token is null;
  return null;
end
$$;
create trigger webhook_deliveries_drop_jobs after delete on public.webhook_deliveries
  referencing old table as old_deliveries
  for each statement execute function private.drop_webhook_delivery_jobs();

-- Disabling a webhook holds its queued deliveries (a manual attempt still goes out);
-- reactivating it queues everything held, with a fresh retry cycle, now.
create function private.webhook_status_changed() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.status = 'disabled' then
    with held as (
      update public.webhook_deliveries d set status = 'held', next_attempt_at = null
      where d.webhook_id = new.id and d.status = 'pending' and not d.manual
      returning d.id
    )
    delete from private.jobs j using held
    where j.kind = 'webhook' and j.ref = held.id and j.lease_token is null;
  else
    -- Jobs first (webhook → job → delivery, the order the worker's recording keeps).
    insert into private.jobs (kind, ref, org_id, environment)
    select 'webhook', d.id, d.org_id, d.environment from public.webhook_deliveries d
    where d.webhook_id = new.id and d.status = 'held'
    on conflict (kind, ref) do nothing;
    update public.webhook_deliveries d
    set status = 'pending', manual = false, cycle_attempts = 0, next_attempt_at = now()
    where d.webhook_id = new.id and d.status = 'held';
  end if;
  return null;
end
$$;
create trigger webhooks_status_changed after update of status on public.webhooks
  for each row when (old.status is distinct from new.status)
  execute function private.webhook_status_changed();

-- ---------------------------------------------------------------------------------------
-- Redelivery and the worker's record of an attempt
-- ---------------------------------------------------------------------------------------

-- A new attempt of a delivery the caller administers, now: a delivery waiting for a retry
-- has it moved to now (its retry cycle goes on); any other becomes a manual attempt.
-- Returns the delivery's status before, or null when it is not the caller's.
create function private.redeliver_webhook_delivery(p_delivery_id text) returns text
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  d public.webhook_deliveries;
begin
  select * into d from public.webhook_deliveries x
  where x.id = p_delivery_id and x.org_id = private.request_org_id()
    and x.environment = private.request_environment();
  if not found or not private.request_can_admin() then
    return null;
  end if;
  -- A job a worker holds right now is left alone: that attempt is under way.
  insert into private.jobs as j (kind, ref, org_id, environment)
  values ('webhook', d.id, d.org_id, d.environment)
  on conflict (kind, ref) do update set available_at = now() where j.lease_token is null;
  update public.webhook_deliveries x
  set manual = x.manual or x.status <> 'pending', status = 'pending', next_attempt_at = now()
  where x.id = d.id;
  return d.status;
end
$$;

-- The worker's record of one attempt of the delivery its job names. Like the job
-- functions, security definer with the job's lease token as the capability: it touches
-- only that delivery, its attempts and its webhook's status, and only the service role
-- may call it. p_sent false: the worker did not send because the webhook is disabled.
-- p_retry_delays are the seconds before automatic attempts 2, 3, …; after the last one
-- the delivery has failed and the webhook is disabled. Returns the delivery's new status,
-- 'missing' (deleted meanwhile), or 'lease_lost' (another worker holds the job now).
create function private.record_webhook_attempt(
  p_job_id bigint, p_lease_token uuid, p_lease_seconds int,
  p_sent boolean, p_attempted_at timestamptz, p_status_code int, p_duration_ms int,
  p_error text, p_retry_delays int[]
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
  max_attempts int := coalesce(cardinality(p_retry_delays), 0) + 1;
  new_status text;
  next_at timestamptz;
  disable_reason text;
begin
  -- Holding the lease (as private.hold_lease) locks the job first.
  update private.jobs
  set available_at = greatest(available_at, now() + make_interval(secs => p_lease_seconds))
  where id = p_job_id and lease_token = p_lease_token and kind = 'webhook'
  returning ref into delivery_id;
  if not found then
    return 'lease_lost';
  end if;
  -- A failure may disable the webhook: lock it before the delivery, the order an API
  -- status change takes them in (its trigger then updates deliveries). No key update, so
  -- the fan-out's foreign-key checks (key share) are not held up.
  if p_sent and not success then
    perform from public.webhooks w
    where w.id = (select x.webhook_id from public.webhook_deliveries x where x.id = delivery_id)
    for no key update;
  end if;
  select * into d from public.webhook_deliveries where id = delivery_id for update;
  if not found then
    delete from private.jobs where id = p_job_id;
    return 'missing';
  end if;
  select w.status into webhook_status from public.webhooks w where w.id = d.webhook_id;

  if not p_sent then
    if webhook_status = 'disabled' and not d.manual then
      update public.webhook_deliveries set status = 'held', next_attempt_at = null
      where id = d.id;
      delete from private.jobs where id = p_job_id;
      return 'held';
    end if;
    update private.jobs set available_at = now(), lease_token = null where id = p_job_id;
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
  elsif d.cycle_attempts + 1 >= max_attempts then
    new_status := 'failed';
    disable_reason := 'failing';
  else
    new_status := 'pending';
    next_at := p_attempted_at + make_interval(secs => p_retry_delays[d.cycle_attempts + 1]);
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
  if next_at is not null then
    -- A planned retry: the claim count starts afresh (only crashes count toward giving up).
    update private.jobs set available_at = next_at, lease_token = null, claims = 0
    where id = p_job_id;
  else
    delete from private.jobs where id = p_job_id;
  end if;
  -- After the delivery's own update, so the trigger's hold does not take this one.
  if disable_reason is not null then
    update public.webhooks
    set status = 'disabled', disabled_reason = disable_reason, disabled_at = now(),
        updated_at = now()
    where id = d.webhook_id and status = 'active';
  end if;
  return new_status;
end
$$;
grant execute on function private.record_webhook_attempt(bigint, uuid, int, boolean,
  timestamptz, int, int, text, int[]) to service_role;

grant execute on function private.request_can_admin(),
  private.set_webhook_secret(text, text),
  private.redeliver_webhook_delivery(text)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Sandbox webhooks and deliveries go with the rest of the sandbox data after 24 hours
-- (the workflows migration's version, plus the last two statements).
-- ---------------------------------------------------------------------------------------
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
  delete from public.webhook_deliveries
    where environment = 'test' and created_at < now() - interval '24 hours';
  delete from public.webhooks where environment = 'test' and created_at < now() - interval '24 hours';
$$;

-- Functions are executable by PUBLIC when created, and a per-schema default privilege
-- cannot take that away: revoke it here, so only the grants above apply.
revoke execute on all functions in schema private from public;
