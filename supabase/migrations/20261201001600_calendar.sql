-- Calendar: events of an organization per environment, their email reminders, and the
-- organization's Google Calendar connection. Row-level security by org_id and environment,
-- like contacts. The code is in shared/calendar/.
--
-- The Google connection lives here, not in public.integrations: that table is built around
-- messaging channels (issue 14) and a later step folds this one into it. Its credentials
-- (OAuth client and refresh token) and its cached access token are sealed by the functions
-- (AES-GCM with BIVELIO_SECRETS_KEY, shared/platform/secrets.ts): sealed text only here.

create table public.calendar_connections (
  id text primary key default private.new_id('gcal'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  -- The Google calendar events are written to and read from.
  calendar_id text not null default 'primary' check (length(calendar_id) between 1 and 1024),
  -- broken: Google refused the grant (invalid_grant); reconnect with a new refresh token.
  status text not null default 'connected' check (status in ('connected', 'broken')),
  -- {client_id, client_secret, refresh_token}, sealed.
  sealed_credentials text not null check (sealed_credentials like 'v_.%'),
  -- The last access token Google gave, sealed, and when it expires (in clear, so the code
  -- knows when to refresh without opening it).
  sealed_access_token text check (sealed_access_token like 'v_.%'),
  access_token_expires_at timestamptz,
  -- Google's nextSyncToken after the last complete sync: the next sync asks only for changes.
  sync_token text,
  last_synced_at timestamptz,
  -- {code, message, provider_code, provider_message} of the refusal that broke it.
  error jsonb check (jsonb_typeof(error) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, environment)
);

alter table public.calendar_connections enable row level security;
revoke all on public.calendar_connections from anon, authenticated;
grant select, insert, update, delete on public.calendar_connections to authenticated;
create policy calendar_connections_own_org_env on public.calendar_connections
  for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

create table public.calendar_events (
  id text primary key default private.new_id('evt'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  title text not null check (length(title) between 1 and 500),
  description text check (length(description) <= 8000),
  location text check (length(location) <= 1000),
  -- The instants, and the offsets the times were given with ('Z', '+02:00'), so answers
  -- show them as given.
  start_at timestamptz not null,
  start_offset text not null default 'Z' check (start_offset ~ '^(Z|[+-][0-9]{2}:[0-9]{2})$'),
  end_at timestamptz not null,
  end_offset text not null default 'Z' check (end_offset ~ '^(Z|[+-][0-9]{2}:[0-9]{2})$'),
  -- An IANA zone name when one was given (Google keeps it for the event).
  time_zone text check (length(time_zone) between 1 and 100),
  -- [{email, status}], status needs_action | accepted | declined | tentative.
  attendees jsonb not null default '[]' check (jsonb_typeof(attendees) = 'array'),
  -- [{method: email | popup, minutes_before}].
  reminders jsonb not null default '[]' check (jsonb_typeof(reminders) = 'array'),
  source text not null default 'bivelio' check (source in ('bivelio', 'google_calendar')),
  calendar_id text not null default 'primary' check (length(calendar_id) between 1 and 1024),
  google_event_id text check (length(google_event_id) between 1 and 1024),
  -- pending: written here, not yet in Google (the call is in flight, or its process died).
  google_sync text not null default 'none' check (google_sync in ('none', 'pending', 'synced')),
  attendees_notified boolean not null default false,
  -- Why attendees were not notified (no email channel, the channel refused).
  notification_error text,
  status text not null default 'confirmed' check (status in ('confirmed', 'cancelled')),
  -- A workflow step's job ref: a step run again finds its event instead of making another.
  request_key text check (length(request_key) between 1 and 300),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  cancelled_at timestamptz,
  unique (org_id, environment, id),
  unique (org_id, environment, google_event_id),
  unique (org_id, environment, request_key),
  check (end_at >= start_at),
  check ((status = 'cancelled') = (cancelled_at is not null)),
  check ((google_sync = 'synced') = (google_event_id is not null))
);
create index calendar_events_range_idx
  on public.calendar_events (org_id, environment, start_at, id);

alter table public.calendar_events enable row level security;
revoke all on public.calendar_events from anon, authenticated;
grant select, insert, update, delete on public.calendar_events to authenticated;
create policy calendar_events_own_org_env on public.calendar_events for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- One row per email reminder of an event, sent by BiVelio at due_at (start - minutes_before)
-- through a `calendar_reminder` job (ref: the reminder's id). The row's status changes once,
-- in the transaction that ends the job, so a reminder is sent at most once.
create table public.calendar_reminders (
  id text primary key default private.new_id('rem'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  event_id text not null,
  minutes_before int not null check (minutes_before between 0 and 40320),
  due_at timestamptz not null,
  -- skipped: the event was cancelled or the reminder removed; not_sent: no way to send it
  -- (the reason is in detail); sending: the send is in flight (a crash then is not resent).
  status text not null default 'pending'
    check (status in ('pending', 'sending', 'sent', 'skipped', 'not_sent', 'failed')),
  detail text,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (event_id, minutes_before),
  foreign key (org_id, environment, event_id)
    references public.calendar_events (org_id, environment, id) on delete cascade
);
create index calendar_reminders_event_idx on public.calendar_reminders (event_id);

alter table public.calendar_reminders enable row level security;
revoke all on public.calendar_reminders from anon, authenticated;
grant select, insert, update, delete on public.calendar_reminders to authenticated;
create policy calendar_reminders_own_org_env on public.calendar_reminders for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- A pending reminder is a queued job, due at its time; a moved reminder moves its job; a
-- deleted one drops it. (Jobs a worker holds are left to it: it reads the row again.)
create function private.calendar_reminder_jobs() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' then
    delete from private.jobs j
    where j.kind = 'calendar_reminder' and j.ref = old.id and j.lease_token is null;
    return null;
  end if;
  if new.status = 'pending' then
    insert into private.jobs (kind, ref, org_id, environment, available_at)
    values ('calendar_reminder', new.id, new.org_id, new.environment, new.due_at)
    on conflict (kind, ref) do update set available_at = excluded.available_at
      where private.jobs.lease_token is null;
  else
    delete from private.jobs j
    where j.kind = 'calendar_reminder' and j.ref = new.id and j.lease_token is null;
  end if;
  return null;
end
$$;
create trigger calendar_reminders_jobs
  after insert or update of status, due_at or delete on public.calendar_reminders
  for each row execute function private.calendar_reminder_jobs();

-- Incremental sync from Google for every connected live connection: one `calendar_sync`
-- job per connection (ref: its id), run by the worker with the connection's sync token.
-- Sandbox connections never reach Google, so they are not synced on a schedule.
create function private.queue_calendar_syncs() returns int
language sql volatile security definer
set search_path = ''
as $$
  with queued as (
    insert into private.jobs (kind, ref, org_id, environment)
    select 'calendar_sync', c.id, c.org_id, c.environment
    from public.calendar_connections c
    where c.status = 'connected' and c.environment = 'live'
    on conflict (kind, ref) do nothing
    returning 1
  )
  select count(*)::int from queued;
$$;
revoke execute on function private.queue_calendar_syncs() from public;

select cron.schedule('bivelio-calendar-sync', '*/5 * * * *',
  'select private.queue_calendar_syncs()');

insert into private.sandbox_tables (table_name, purge_order) values
  ('public.calendar_reminders', 27),
  ('public.calendar_events', 37),
  ('public.calendar_connections', 38);
