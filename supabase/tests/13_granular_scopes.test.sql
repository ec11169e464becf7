-- Granular API key scopes in the database: the shapes public.api_keys accepts (broad
-- `read`/`write`/`admin`, or `<group>:<level>`), publishable keys holding read scopes only,
-- and webhooks' row-level security letting `webhooks:admin` (and no other group's admin)
-- administer webhooks.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(12);

insert into public.organizations (id, name) values ('org_gs_a', 'Granular Org A');

create function pg_temp.insert_key(p_type text, p_scopes text[]) returns void
language sql as $$
  insert into public.api_keys (org_id, name, environment, key_type, scopes, key_hash, prefix,
                               start, last_four)
  values ('org_gs_a', 'k', 'live', p_type, p_scopes, gen_random_uuid()::text,
          'bv_live_sk_', 'aaaa', '1111')
$$;

-- ---------------------------------------------------------------------------------------
-- Shapes
-- ---------------------------------------------------------------------------------------
select lives_ok(
  $$select pg_temp.insert_key('secret', '{read,contacts:write,webhooks:admin}')$$,
  'a secret key may hold broad and group scopes'
);
select throws_ok(
  $$select pg_temp.insert_key('secret', '{contacts:delete}')$$,
  '23514', null, 'an unknown level is refused'
);
select throws_ok(
  $$select pg_temp.insert_key('secret', '{Contacts:read}')$$,
  '23514', null, 'a group is lower-case'
);
select throws_ok(
  $$select pg_temp.insert_key('secret', '{:read}')$$,
  '23514', null, 'an empty group is refused'
);
select throws_ok(
  $$select pg_temp.insert_key('secret', '{}')$$,
  '23514', null, 'a key holds at least one scope'
);
select lives_ok(
  $$select pg_temp.insert_key('publishable', '{workflows:read,read}')$$,
  'a publishable key may hold read scopes, broad or of a group'
);
select throws_ok(
  $$select pg_temp.insert_key('publishable', '{workflows:read,contacts:write}')$$,
  '23514', null, 'a publishable key may not hold a write scope'
);
select throws_ok(
  $$select pg_temp.insert_key('publishable', '{admin}')$$,
  '23514', null, 'a publishable key may not hold admin'
);

-- ---------------------------------------------------------------------------------------
-- Webhooks' admin check reads the claims' scopes
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_gs_a","environment":"live","scopes":["webhooks:admin"]}';
select ok(private.request_can_admin(), 'webhooks:admin administers webhooks');
select lives_ok(
  $$insert into public.webhooks (url, events) values ('https://a.example/h', '{contact.created}')$$,
  'so row-level security lets it create one'
);
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_gs_a","environment":"live","scopes":["contacts:admin","workflows:admin","webhooks:write"]}';
select ok(not private.request_can_admin(), 'other groups'' admin, or webhooks:write, does not');
select throws_ok(
  $$insert into public.webhooks (url, events) values ('https://a.example/h', '{contact.created}')$$,
  '42501', null, 'so row-level security refuses its insert'
);
reset role;

select * from finish();
rollback;
