-- Communications: the integrations an organization connects per environment (a WhatsApp
-- Business number, a Telegram bot, an email account) and the messages sent and received
-- through them. Row-level security by org_id and environment, like contacts. The code is in
-- shared/messages/ (channels, send, inbound) and shared/integrations/.
--
-- Credentials are sealed by the functions (AES-GCM with BIVELIO_SECRETS_KEY,
-- shared/platform/secrets.ts) before they reach this table: the column holds sealed text
-- only, so the API role, a backup or a dump never sees them in clear.

create table public.integrations (
  id text primary key default private.new_id('int'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  -- google_calendar and mcp come with the next issue.
  channel text not null
    check (channel in ('whatsapp', 'telegram', 'email', 'google_calendar', 'mcp')),
  -- broken: connected, but the provider refused the last setup call (error says why).
  status text not null default 'connected'
    check (status in ('connected', 'broken', 'disconnected')),
  sealed_credentials text not null check (sealed_credentials like 'v_.%'),
  -- What responses may show: the number, the bot's name, the from address.
  public jsonb not null default '{}' check (jsonb_typeof(public) = 'object'),
  -- Where the provider delivers inbound traffic (private.receivers).
  receiver_id text,
  -- {code, message, provider_code, provider_message} of the last failed setup or test.
  error jsonb check (jsonb_typeof(error) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  disconnected_at timestamptz,
  unique (org_id, environment, id),
  foreign key (org_id, environment, receiver_id)
    references private.receivers (org_id, environment, id) on delete set null (receiver_id),
  check ((status = 'disconnected') = (disconnected_at is not null))
);
-- One live (connected or broken) integration per organization, environment and channel:
-- `messages/send` finds it by channel.
create unique index integrations_active_channel_idx
  on public.integrations (org_id, environment, channel) where status <> 'disconnected';
create index integrations_receiver_idx on public.integrations (receiver_id)
  where receiver_id is not null;

alter table public.integrations enable row level security;
revoke all on public.integrations from anon, authenticated;
grant select, insert, update on public.integrations to authenticated;
create policy integrations_own_org_env on public.integrations for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

create table public.messages (
  id text primary key default private.new_id('msg'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  integration_id text not null,
  contact_id text,
  channel text not null check (channel in ('whatsapp', 'telegram', 'email')),
  direction text not null check (direction in ('inbound', 'outbound')),
  -- As shown: the business number or the sender's, the bot, the address.
  "from" text not null check (length("from") between 1 and 320),
  "to" text not null check (length("to") between 1 and 320),
  -- The other party as the channel names it (E.164 digits, a chat or user id, a lower-case
  -- address): how a conversation and its contact are found again.
  counterpart text not null check (length(counterpart) between 1 and 320),
  type text not null check (type in ('text', 'template')),
  body text,
  subject text check (length(subject) <= 998),
  html text,
  -- WhatsApp templates: {name, language, components}.
  template jsonb check (jsonb_typeof(template) = 'object'),
  status text not null
    check (status in ('queued', 'sent', 'delivered', 'read', 'failed', 'received')),
  provider_message_id text check (length(provider_message_id) between 1 and 1000),
  -- Sandbox sends never reach a provider: a `sim_…` provider id and this flag.
  simulated boolean not null default false,
  -- {code, message, provider_code, provider_message} when failed.
  error jsonb check (jsonb_typeof(error) = 'object'),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  -- A workflow step's `<instance>.<step>.<attempt>`: a step run again after a crash finds
  -- its message instead of sending again. Null for API calls and inbound messages.
  request_key text check (length(request_key) between 1 and 300),
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  created_at timestamptz not null default now(),
  unique (org_id, environment, id),
  unique (channel, integration_id, provider_message_id),
  unique (org_id, environment, request_key),
  foreign key (org_id, environment, integration_id)
    references public.integrations (org_id, environment, id) on delete cascade,
  -- Deleting a contact keeps its messages, unlinked.
  foreign key (org_id, environment, contact_id)
    references public.contacts (org_id, environment, id) on delete set null (contact_id),
  check ((direction = 'inbound') = (status = 'received'))
);
-- messages/list: a contact's conversation (optionally one channel), newest first.
create index messages_conversation_idx
  on public.messages (org_id, environment, contact_id, created_at desc, id desc);
create index messages_list_idx on public.messages (org_id, environment, created_at desc, id desc);
-- Finding the contact of an address seen before on a channel.
create index messages_counterpart_idx
  on public.messages (org_id, environment, channel, counterpart, created_at desc);

alter table public.messages enable row level security;
revoke all on public.messages from anon, authenticated;
grant select, insert, update on public.messages to authenticated;
create policy messages_own_org_env on public.messages for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- A status callback can overtake the send's own record: the provider answers, calls the
-- webhook at once, and the update arrives before the message row has its provider id. Such
-- updates wait here and are applied when the send is recorded (shared/messages/messages.ts);
-- ones no message ever claims (messages sent outside BiVelio) go after a day.
create table private.early_message_statuses (
  org_id text not null default private.request_org_id(),
  environment text not null default private.request_environment(),
  integration_id text not null,
  provider_message_id text not null check (length(provider_message_id) between 1 and 1000),
  status text not null check (status in ('sent', 'delivered', 'read', 'failed')),
  at timestamptz not null,
  error jsonb check (jsonb_typeof(error) = 'object'),
  received_at timestamptz not null default now(),
  primary key (integration_id, provider_message_id, status),
  foreign key (org_id, environment, integration_id)
    references public.integrations (org_id, environment, id) on delete cascade
);
create index early_message_statuses_received_at_idx
  on private.early_message_statuses (received_at);
alter table private.early_message_statuses enable row level security;
grant select, insert, delete on private.early_message_statuses to authenticated;
create policy early_message_statuses_own_org_env on private.early_message_statuses
  for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

create function private.purge_early_message_statuses() returns void
language sql volatile security definer
set search_path = ''
as $$
  delete from private.early_message_statuses where received_at < now() - interval '1 day';
$$;
revoke execute on function private.purge_early_message_statuses() from public;
select cron.schedule('bivelio-purge-early-message-statuses', '17 * * * *',
  'select private.purge_early_message_statuses()');

-- Matching a sender to a contact: by phone digits (WhatsApp), by address (email), by
-- Telegram user id (kept in custom_fields.telegram_user_id).
create index contacts_phone_digits_idx
  on public.contacts (org_id, environment, (regexp_replace(phone, '[^0-9]', '', 'g')))
  where phone is not null;
create index contacts_email_lower_idx
  on public.contacts (org_id, environment, lower(email)) where email is not null;
create index contacts_telegram_user_idx
  on public.contacts (org_id, environment, (custom_fields ->> 'telegram_user_id'))
  where custom_fields ? 'telegram_user_id';

-- Sandbox rows go after 24 hours with the rest: messages before the contacts (40) they
-- point to, integrations before the receivers (70) they point to.
insert into private.sandbox_tables (table_name, purge_order) values
  ('public.messages', 38),
  ('public.integrations', 65);
