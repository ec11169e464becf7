-- Receivers: the public URLs providers deliver to (WhatsApp, Telegram, inbound email). A
-- receiver belongs to one organization and environment; the request that reaches it
-- carries no API key, so its id in the URL is how the organization is found, and the
-- provider's signature, checked with the receiver's own secrets, is the authentication
-- (shared/platform/receiver.ts).
--
-- private.received_updates deduplicates what providers deliver more than once (they retry
-- on anything but a 2xx, and sometimes without a reason): a provider's update id is
-- recorded in the same transaction as what handling it wrote, so it counts as received if
-- and only if that committed.

create table private.receivers (
  id text primary key default private.new_id('rcv'),
  org_id text not null references public.organizations (id) on delete cascade,
  environment text not null check (environment in ('live', 'test')),
  -- The receiver kind's name, the URL segment before the id: /receivers/<kind>/<id>.
  kind text not null check (kind ~ '^[a-z][a-z0-9_-]{0,49}$'),
  -- The provider credentials the kind checks signatures with, sealed with
  -- BIVELIO_SECRETS_KEY (shared/platform/secrets.ts): never in clear here.
  sealed_secrets text not null check (sealed_secrets like 'v_.%'),
  status text not null default 'active' check (status in ('active', 'disabled')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, environment, id)
);
create index receivers_org_idx on private.receivers (org_id, environment);
-- Service access only: no policy, no grant. The API reaches it through the functions below
-- (acting for the caller's organization) and the receivers function's one lookup by id.
alter table private.receivers enable row level security;

create table private.received_updates (
  org_id text not null default private.request_org_id(),
  environment text not null default private.request_environment(),
  receiver_id text not null,
  -- The provider's id of the update (a WhatsApp message id, a Telegram update_id, an
  -- email's Message-ID): what a redelivery repeats.
  provider_id text not null check (length(provider_id) between 1 and 1000),
  received_at timestamptz not null default now(),
  primary key (receiver_id, provider_id),
  -- Only a receiver of the same organization and environment.
  foreign key (org_id, environment, receiver_id)
    references private.receivers (org_id, environment, id) on delete cascade
);
create index received_updates_received_at_idx on private.received_updates (received_at);

-- Written by the receivers function inside the transaction that acts for the receiver's
-- organization and environment (role authenticated), beside what handling the update wrote.
alter table private.received_updates enable row level security;
grant select (receiver_id, provider_id), insert (receiver_id, provider_id)
  on private.received_updates to authenticated;
create policy received_updates_own_org_env on private.received_updates for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- ---------------------------------------------------------------------------------------
-- Creating and changing receivers, for the integrations that own them. They act for the
-- caller's organization and environment (its claims), inside the caller's transaction;
-- the caller's scope is checked by the API action that calls them.
-- ---------------------------------------------------------------------------------------

create function private.register_receiver(p_kind text, p_sealed_secrets text) returns text
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  new_id text;
begin
  if private.request_org_id() is null then
    raise exception 'register_receiver needs a caller acting for an organization'
      using errcode = '42501';
  end if;
  insert into private.receivers (org_id, environment, kind, sealed_secrets)
    values (private.request_org_id(), private.request_environment(), p_kind, p_sealed_secrets)
  returning id into new_id;
  return new_id;
end
$$;

-- Changes a receiver of the caller's organization and environment: new sealed secrets
-- and/or a status (null leaves either as it is). False when there is no such receiver.
create function private.update_receiver(p_id text, p_sealed_secrets text, p_status text)
returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  update private.receivers r
    set sealed_secrets = coalesce(p_sealed_secrets, r.sealed_secrets),
        status = coalesce(p_status, r.status),
        updated_at = now()
  where r.id = p_id
    and r.org_id = private.request_org_id()
    and r.environment = private.request_environment();
  return found;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Clean-up (pg_cron): dedup records are kept 7 days (WhatsApp retries a failed delivery
-- for up to 7 days, Telegram keeps an update 24 hours), and sandbox receivers go with the
-- rest of the sandbox data after 24 hours. A job of its own rather than another copy of
-- private.purge_expired_data()'s body.
-- ---------------------------------------------------------------------------------------

create function private.purge_receiver_data() returns void
language sql volatile security definer
set search_path = ''
as $$
  delete from private.received_updates where received_at < now() - interval '7 days';
  delete from private.receivers where environment = 'test' and created_at < now() - interval '24 hours';
$$;

select cron.schedule('bivelio-purge-receiver-data', '*/10 * * * *',
  'select private.purge_receiver_data()');

revoke execute on function private.register_receiver(text, text),
  private.update_receiver(text, text, text), private.purge_receiver_data() from public;
grant execute on function private.register_receiver(text, text),
  private.update_receiver(text, text, text) to authenticated, service_role;
