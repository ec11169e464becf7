-- Row-level security of public.integrations, public.messages and
-- private.early_message_statuses: isolation by organization and environment, messages only
-- of an integration of the same tenant, one active integration per channel, a provider's
-- message id stored once per integration, sealed credentials only.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(14);

\ir _helpers.psql

insert into public.organizations (id, name) values
  ('org_msg_a', 'Messages Org A'),
  ('org_msg_b', 'Messages Org B');
insert into public.integrations (id, org_id, environment, provider, name, sealed_credentials)
  values
  ('int_a_live', 'org_msg_a', 'live', 'whatsapp', 'whatsapp', 'v1.x.y'),
  ('int_a_test', 'org_msg_a', 'test', 'whatsapp', 'whatsapp', 'v1.x.y'),
  ('int_b_live', 'org_msg_b', 'live', 'whatsapp', 'whatsapp', 'v1.x.y');
insert into public.messages (id, org_id, environment, integration_id, channel, direction,
    "from", "to", counterpart, type, body, status, provider_message_id) values
  ('msg_a_live', 'org_msg_a', 'live', 'int_a_live', 'whatsapp', 'outbound', '+1', '+34', '34',
   'text', 'hi', 'sent', 'wamid.1'),
  ('msg_a_test', 'org_msg_a', 'test', 'int_a_test', 'whatsapp', 'outbound', '+1', '+34', '34',
   'text', 'hi', 'sent', 'wamid.1'),
  ('msg_b_live', 'org_msg_b', 'live', 'int_b_live', 'whatsapp', 'inbound', '+34', '+1', '34',
   'text', 'hi', 'received', 'wamid.2');

set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_msg_a","environment":"live"}';

select results_eq('select id from integrations order by id', array['int_a_live'],
  'org A live sees only its live integration');
select results_eq('select id from messages order by id', array['msg_a_live'],
  'org A live sees only its live messages');
select is(pg_temp.affected($$update messages set body = 'x' where id = 'msg_b_live'$$), 0,
  'org A cannot change org B''s message');
select is(pg_temp.affected($$update integrations set status = 'broken' where id = 'int_a_test'$$),
  0, 'org A live cannot change its sandbox integration');

select throws_ok(
  $$insert into messages (integration_id, channel, direction, "from", "to", counterpart, type,
      body, status) values ('int_b_live', 'whatsapp', 'outbound', '+1', '+34', '34', 'text',
      'x', 'queued')$$,
  '23503', null, 'a message cannot point at another organization''s integration');
select throws_ok(
  $$insert into messages (org_id, integration_id, channel, direction, "from", "to",
      counterpart, type, body, status) values ('org_msg_b', 'int_a_live', 'whatsapp',
      'outbound', '+1', '+34', '34', 'text', 'x', 'queued')$$,
  '42501', null, 'a message cannot be written into another organization');
select throws_ok(
  $$insert into messages (integration_id, channel, direction, "from", "to", counterpart, type,
      body, status, provider_message_id) values ('int_a_live', 'whatsapp', 'outbound', '+1',
      '+34', '34', 'text', 'x', 'sent', 'wamid.1')$$,
  '23505', null, 'a provider''s message id is stored once per integration');
select throws_ok(
  $$insert into messages (integration_id, channel, direction, "from", "to", counterpart, type,
      body, status) values ('int_a_live', 'whatsapp', 'inbound', '+1', '+34', '34', 'text',
      'x', 'sent')$$,
  '23514', null, 'inbound messages are received, outbound ones never are');

select throws_ok(
  $$insert into integrations (provider, name, sealed_credentials)
    values ('whatsapp', 'whatsapp', 'v1.a.b')$$,
  '23505', null, 'one active integration per channel and environment');
select lives_ok(
  $$insert into integrations (provider, name, sealed_credentials)
    values ('telegram', 'telegram', 'v1.a.b')$$,
  'another channel connects');
select throws_ok(
  $$insert into integrations (provider, name, sealed_credentials) values ('email', 'email',
      '{"password":"in clear"}')$$,
  '23514', null, 'credentials are stored sealed only');
select lives_ok(
  $$update integrations set status = 'disconnected', disconnected_at = now()
    where id = 'int_a_live'$$,
  'disconnecting keeps the row');
select lives_ok(
  $$insert into integrations (provider, name, sealed_credentials)
    values ('whatsapp', 'whatsapp', 'v1.a.b')$$,
  'the channel connects again once disconnected');

insert into private.early_message_statuses (integration_id, provider_message_id, status, at)
  values ('int_a_live', 'wamid.early', 'delivered', now());
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_msg_b","environment":"live"}';
select is_empty('select * from private.early_message_statuses',
  'early statuses are visible to their organization only');

select * from finish();
rollback;
