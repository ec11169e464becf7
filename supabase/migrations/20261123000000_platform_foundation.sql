-- Platform foundation: organizations and members, API keys, contacts, the events outbox,
-- rate-limit counters, idempotency records, and the scheduled clean-up.
-- Every table holding customer data has row-level security by org_id and environment:
-- handlers run as `authenticated` with the caller's claims, so Postgres decides visibility.

create extension if not exists pg_cron;
create extension if not exists pg_trgm with schema extensions;

create schema if not exists private;
revoke all on schema private from public;
-- RLS policies call private.* helpers with the caller's privileges.
grant usage on schema private to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Ids and request claims
-- ---------------------------------------------------------------------------------------

-- A type prefix and 128 random bits (ct_…, wf_…): readable in logs, unguessable.
create function private.new_id(prefix text) returns text
language sql volatile
set search_path = ''
as $$ select prefix || '_' || replace(gen_random_uuid()::text, '-', '') $$;

-- The caller's organization and environment, from the claims the API sets per request
-- (user JWT claims from the access token hook, or those of the API key).
create function private.request_org_id() returns text
language sql stable
set search_path = ''
as $$ select nullif(auth.jwt() ->> 'org_id', '') $$;

create function private.request_environment() returns text
language sql stable
set search_path = ''
as $$ select coalesce(nullif(auth.jwt() ->> 'environment', ''), 'live') $$;

-- Functions in private run only for roles granted them below (the defaults let anyone).
alter default privileges in schema private revoke execute on functions from public;
grant execute on function private.new_id(text), private.request_org_id(),
  private.request_environment() to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Organizations, plans and members
-- ---------------------------------------------------------------------------------------

create table private.plan_limits (
  plan text primary key,
  requests_per_minute int,  -- null: unlimited
  requests_per_second int   -- null: unlimited
);
insert into private.plan_limits values
  ('starter', 100, 20),
  ('pro', 500, 50),
  ('enterprise', null, null);

create table public.organizations (
  id text primary key default private.new_id('org'),
  name text not null check (length(name) between 1 and 200),
  plan text not null default 'starter' references private.plan_limits (plan),
  -- Enterprise "custom" limits; null falls back to the plan's.
  custom_requests_per_minute int check (custom_requests_per_minute > 0),
  custom_requests_per_second int check (custom_requests_per_second > 0),
  created_at timestamptz not null default now()
);

create table public.organization_members (
  org_id text not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (org_id, user_id)
);
create index organization_members_user_idx on public.organization_members (user_id);

-- Whether the calling user is an owner or admin of the caller's organization, read from
-- the membership table at call time so a demotion takes effect at once.
create function private.is_org_admin() returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select from public.organization_members m
    where m.org_id = private.request_org_id()
      and m.user_id = auth.uid()
      and m.role in ('owner', 'admin')
  )
$$;
grant execute on function private.is_org_admin() to authenticated;

alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;
revoke all on public.organizations, public.organization_members from anon, authenticated;
grant select on public.organizations, public.organization_members to authenticated;

create policy organizations_own on public.organizations for select to authenticated
  using (id = (select private.request_org_id()));
create policy members_own_org on public.organization_members for select to authenticated
  using (org_id = (select private.request_org_id()));

-- Supabase Auth custom access token hook: adds the user's organization and role to every
-- JWT it issues. The active organization is app_metadata.active_org_id when the user is a
-- member of it, otherwise the oldest membership.
create function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  membership record;
begin
  select m.org_id, m.role into membership
  from public.organization_members m
  where m.user_id = (event ->> 'user_id')::uuid
  order by (m.org_id = (claims -> 'app_metadata' ->> 'active_org_id')) desc nulls last,
           m.created_at, m.org_id
  limit 1;

  if membership.org_id is not null then
    claims := claims || jsonb_build_object('org_id', membership.org_id, 'org_role', membership.role);
  end if;
  return jsonb_build_object('claims', claims);
end
$$;
revoke execute on function public.custom_access_token_hook(jsonb) from public, anon, authenticated;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
grant usage on schema public to supabase_auth_admin;

-- ---------------------------------------------------------------------------------------
-- API keys: only the SHA-256 of a key is stored, never the key.
-- ---------------------------------------------------------------------------------------

create table public.api_keys (
  id text primary key default private.new_id('key'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  name text not null check (length(name) between 1 and 100),
  environment text not null check (environment in ('live', 'test')),
  key_type text not null check (key_type in ('secret', 'publishable')),
  scopes text[] not null check (
    scopes <@ array['read', 'write', 'admin'] and cardinality(scopes) > 0
  ),
  key_hash text not null unique,
  prefix text not null,      -- 'bv_live_sk_'
  start text not null,       -- first characters after the prefix, for recognition
  last_four text not null,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  replaced_by text,
  check (key_type = 'secret' or (environment = 'live' and scopes = array['read'])),
  unique (org_id, id),
  -- A replacement is always a key of the same organization.
  foreign key (org_id, replaced_by) references public.api_keys (org_id, id)
    on delete set null (replaced_by)
);
create index api_keys_org_idx on public.api_keys (org_id, created_at desc);

alter table public.api_keys enable row level security;
revoke all on public.api_keys from anon, authenticated;
-- key_hash may be written at creation but is never readable through the API role.
grant select (id, org_id, name, environment, key_type, scopes, prefix, start, last_four,
  created_by, created_at, last_used_at, expires_at, revoked_at, replaced_by)
  on public.api_keys to authenticated;
grant insert (name, environment, key_type, scopes, key_hash, prefix, start, last_four,
  expires_at) on public.api_keys to authenticated;
grant update (name, expires_at, revoked_at, replaced_by) on public.api_keys to authenticated;

create policy api_keys_admins on public.api_keys for all to authenticated
  using (org_id = (select private.request_org_id()) and (select private.is_org_admin()))
  with check (org_id = (select private.request_org_id()) and (select private.is_org_admin()));

-- ---------------------------------------------------------------------------------------
-- Rate limits: per organization, fixed one-minute and one-second windows.
-- Unlogged: counters are worth nothing after a crash and must not cost a WAL flush.
-- ---------------------------------------------------------------------------------------

create unlogged table private.rate_limit_counters (
  org_id text primary key,
  minute_start timestamptz not null,
  minute_count int not null,
  second_start timestamptz not null,
  second_count int not null
);

-- Counts one request of an organization and says whether it may proceed.
-- exceeded is null when it may, else 'minute' or 'second' (the burst limit).
-- Null limits mean the organization is unlimited (nothing is counted); no row means the
-- organization does not exist.
create function private.consume_rate_limit(p_org_id text)
returns table (
  limit_per_minute int, limit_per_second int, remaining int, reset_at bigint,
  exceeded text, retry_after int
)
language plpgsql volatile
set search_path = ''
as $$
declare
  per_minute int;
  per_second int;
  now_ts timestamptz := clock_timestamp();
  this_minute timestamptz := date_trunc('minute', now_ts);
  this_second timestamptz := date_trunc('second', now_ts);
  counts record;
begin
  select coalesce(o.custom_requests_per_minute, p.requests_per_minute),
         coalesce(o.custom_requests_per_second, p.requests_per_second)
    into per_minute, per_second
  from public.organizations o join private.plan_limits p on p.plan = o.plan
  where o.id = p_org_id;
  if not found then
    return;  -- no row: the organization does not exist
  end if;

  if per_minute is null and per_second is null then
    return query select null::int, null::int, null::int, null::bigint, null::text, null::int;
    return;
  end if;

  insert into private.rate_limit_counters as c
    values (p_org_id, this_minute, 1, this_second, 1)
  on conflict (org_id) do update set
    minute_count = case when c.minute_start = this_minute then c.minute_count + 1 else 1 end,
    minute_start = this_minute,
    second_count = case when c.second_start = this_second then c.second_count + 1 else 1 end,
    second_start = this_second
  returning c.minute_count, c.second_count into counts;

  limit_per_minute := coalesce(per_minute, 2147483647);
  limit_per_second := per_second;
  remaining := greatest(limit_per_minute - counts.minute_count, 0);
  reset_at := extract(epoch from this_minute + interval '1 minute')::bigint;
  if counts.minute_count > limit_per_minute then
    exceeded := 'minute';
    retry_after := greatest(1, ceil(extract(epoch from
      this_minute + interval '1 minute' - now_ts)))::int;
  elsif per_second is not null and counts.second_count > per_second then
    exceeded := 'second';
    retry_after := 1;
  end if;
  return next;
end
$$;

-- The one round trip that authenticates an API key: finds it by hash, says why it is not
-- usable, counts the request against the organization's rate limit, and notes when the
-- key was last used (at most once a minute, so hot keys do not write on every call).
create function private.authenticate_api_key(p_key_hash text)
returns table (
  status text, key_id text, key_name text, org_id text, org_name text, plan text,
  environment text, key_type text, scopes text[],
  limit_per_minute int, limit_per_second int, remaining int, reset_at bigint,
  exceeded text, retry_after int
)
language plpgsql volatile
set search_path = ''
as $$
declare
  k record;
begin
  select ak.id, ak.name, ak.org_id, o.name as org_name, o.plan, ak.environment,
         ak.key_type, ak.scopes, ak.revoked_at, ak.expires_at, ak.last_used_at
    into k
  from public.api_keys ak join public.organizations o on o.id = ak.org_id
  where ak.key_hash = p_key_hash;

  if k.id is null then
    status := 'unknown';
    return next;
    return;
  end if;
  key_id := k.id; key_name := k.name; org_id := k.org_id; org_name := k.org_name;
  plan := k.plan; environment := k.environment; key_type := k.key_type; scopes := k.scopes;

  if k.revoked_at is not null and k.revoked_at <= now() then
    status := 'revoked';
    return next;
    return;
  end if;
  if k.expires_at is not null and k.expires_at <= now() then
    status := 'expired';
    return next;
    return;
  end if;

  status := 'ok';
  select r.limit_per_minute, r.limit_per_second, r.remaining, r.reset_at, r.exceeded,
         r.retry_after
    into limit_per_minute, limit_per_second, remaining, reset_at, exceeded, retry_after
  from private.consume_rate_limit(k.org_id) r;

  if k.last_used_at is null or k.last_used_at < now() - interval '1 minute' then
    update public.api_keys set last_used_at = now() where id = k.id;
  end if;
  return next;
end
$$;

-- The one round trip that authenticates a user JWT's organization claim: the user must
-- still be a member (a removal or demotion takes effect at once, not at token expiry);
-- returns the current role and counts the request against the organization's limit.
create function private.authenticate_user(p_user_id uuid, p_org_id text)
returns table (
  org_role text, limit_per_minute int, limit_per_second int, remaining int, reset_at bigint,
  exceeded text, retry_after int
)
language plpgsql volatile
set search_path = ''
as $$
begin
  select m.role into org_role
  from public.organization_members m
  where m.user_id = p_user_id and m.org_id = p_org_id;
  if org_role is null then
    return;  -- no row: not a member (any more)
  end if;
  select r.limit_per_minute, r.limit_per_second, r.remaining, r.reset_at, r.exceeded,
         r.retry_after
    into limit_per_minute, limit_per_second, remaining, reset_at, exceeded, retry_after
  from private.consume_rate_limit(p_org_id) r;
  return next;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Contacts
-- ---------------------------------------------------------------------------------------

create table public.contacts (
  id text primary key default private.new_id('ct'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  type text not null check (type in ('person', 'company')),
  name text not null check (length(name) between 1 and 200),
  email text,
  phone text,
  company_id text,
  tags text[] not null default '{}',
  custom_fields jsonb not null default '{}' check (jsonb_typeof(custom_fields) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, environment, id),
  -- A company link can only point inside the same organization and environment.
  foreign key (org_id, environment, company_id)
    references public.contacts (org_id, environment, id) on delete set null (company_id)
);
-- The API checks this with a clear error; the trigger guarantees it for every writer.
create function private.check_contact_company() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.company_id is not null and (
    new.company_id = new.id or
    not exists (select from public.contacts c where c.id = new.company_id and c.type = 'company')
  ) then
    raise exception 'company_id % is not a company contact', new.company_id
      using errcode = '23514';
  end if;
  if new.type = 'person' and tg_op = 'UPDATE' and old.type = 'company'
     and exists (select from public.contacts c where c.company_id = new.id) then
    raise exception 'contact % has people linked to it', new.id using errcode = '23514';
  end if;
  return new;
end
$$;
create trigger contacts_company_is_company
  before insert or update of company_id, type on public.contacts
  for each row execute function private.check_contact_company();

create index contacts_list_idx on public.contacts (org_id, environment, created_at desc, id desc);
create index contacts_tags_idx on public.contacts using gin (tags);
create index contacts_search_idx on public.contacts
  using gin ((name || ' ' || coalesce(email, '') || ' ' || coalesce(phone, ''))
  extensions.gin_trgm_ops);
create index contacts_company_idx on public.contacts (company_id) where company_id is not null;

alter table public.contacts enable row level security;
-- Not the default "all": TRUNCATE ignores row-level security.
revoke all on public.contacts from anon, authenticated;
grant select, insert, update, delete on public.contacts to authenticated;
create policy contacts_own_org_env on public.contacts for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- ---------------------------------------------------------------------------------------
-- Events outbox: written in the same transaction as the change that caused the event;
-- webhook delivery reads it.
-- ---------------------------------------------------------------------------------------

create table public.events (
  id text primary key default private.new_id('ev'),
  seq bigint generated always as identity unique,
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  type text not null check (type in (
    'workflow.completed', 'workflow.failed', 'message.received', 'message.sent',
    'contact.created', 'contact.updated', 'invoice.created', 'invoice.paid',
    'case.created', 'case.updated', 'agent.executed', 'document.processed'
  )),
  data jsonb not null,
  created_at timestamptz not null default now()
);
create index events_org_idx on public.events (org_id, environment, seq);

alter table public.events enable row level security;
revoke all on public.events from anon, authenticated;
grant select, insert on public.events to authenticated;
create policy events_own_org_env on public.events for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- ---------------------------------------------------------------------------------------
-- Idempotency records (Idempotency-Key on writes), kept 24 hours.
-- ---------------------------------------------------------------------------------------

create table private.idempotency_keys (
  org_id text not null references public.organizations (id) on delete cascade,
  environment text not null check (environment in ('live', 'test')),
  idempotency_key text not null,
  request_hash text not null,
  response_status int,          -- null while the first request is still in flight
  response_body jsonb,
  locked_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  primary key (org_id, environment, idempotency_key)
);

-- The handler's transaction stores the response (as `authenticated`), so it commits
-- together with the change it describes; only rows of the caller's org can be touched.
alter table private.idempotency_keys enable row level security;
grant select (org_id, environment, idempotency_key),
  update (response_status, response_body) on private.idempotency_keys to authenticated;
create policy idempotency_own_org_env on private.idempotency_keys for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()));

-- Claims a key for a request. Returns 'new' when the caller should run the request,
-- 'replay' (with the stored response), 'mismatch' (other body) or 'in_flight'.
-- A record left in flight for over two minutes (its request died) can be claimed again.
create function private.claim_idempotency_key(
  p_org_id text, p_environment text, p_key text, p_request_hash text
) returns table (outcome text, response_status int, response_body jsonb)
language plpgsql volatile
set search_path = ''
as $$
declare
  existing private.idempotency_keys;
begin
  insert into private.idempotency_keys (org_id, environment, idempotency_key, request_hash)
    values (p_org_id, p_environment, p_key, p_request_hash)
  on conflict do nothing;
  if found then
    return query select 'new', null::int, null::jsonb;
    return;
  end if;

  select * into existing from private.idempotency_keys i
  where i.org_id = p_org_id and i.environment = p_environment and i.idempotency_key = p_key
  for update;

  if existing.created_at < now() - interval '24 hours'
     or (existing.response_status is null and existing.locked_at < now() - interval '2 minutes')
  then
    update private.idempotency_keys i
      set request_hash = p_request_hash, response_status = null, response_body = null,
          locked_at = now(), created_at = now()
    where i.org_id = p_org_id and i.environment = p_environment and i.idempotency_key = p_key;
    return query select 'new', null::int, null::jsonb;
  elsif existing.request_hash <> p_request_hash then
    return query select 'mismatch', null::int, null::jsonb;
  elsif existing.response_status is null then
    return query select 'in_flight', null::int, null::jsonb;
  else
    return query select 'replay', existing.response_status, existing.response_body;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Scheduled clean-up (pg_cron): expired idempotency records, idle rate-limit counters,
-- and sandbox data older than 24 hours.
-- ---------------------------------------------------------------------------------------

create function private.purge_expired_data() returns void
language sql volatile
set search_path = ''
as $$
  delete from private.idempotency_keys where created_at < now() - interval '24 hours';
  delete from private.rate_limit_counters where minute_start < now() - interval '2 minutes';
  delete from public.events where environment = 'test' and created_at < now() - interval '24 hours';
  delete from public.contacts where environment = 'test' and created_at < now() - interval '24 hours';
$$;

select cron.schedule('bivelio-purge-expired-data', '*/10 * * * *',
  'select private.purge_expired_data()');
