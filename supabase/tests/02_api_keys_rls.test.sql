-- Row-level security and column privileges of public.api_keys: only owners and admins of
-- the caller's organization (checked against organization_members at call time) see and
-- manage its keys; key_hash is never readable by the API role; anon has no access.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(24);

\ir _helpers.psql

-- Fixtures (as the superuser).
insert into public.organizations (id, name) values
  ('org_ak_a', 'Keys Org A'),
  ('org_ak_b', 'Keys Org B');

insert into auth.users (id, email) values
  ('00000000-0000-4000-a000-0000000a0001', 'owner-a@keys.test'),
  ('00000000-0000-4000-a000-0000000a0002', 'admin-a@keys.test'),
  ('00000000-0000-4000-a000-0000000a0003', 'member-a@keys.test'),
  ('00000000-0000-4000-a000-0000000b0001', 'owner-b@keys.test');

insert into public.organization_members (org_id, user_id, role) values
  ('org_ak_a', '00000000-0000-4000-a000-0000000a0001', 'owner'),
  ('org_ak_a', '00000000-0000-4000-a000-0000000a0002', 'admin'),
  ('org_ak_a', '00000000-0000-4000-a000-0000000a0003', 'member'),
  ('org_ak_b', '00000000-0000-4000-a000-0000000b0001', 'owner');

insert into public.api_keys (id, org_id, name, environment, key_type, scopes, key_hash,
                             prefix, start, last_four) values
  ('key_ak_a_live', 'org_ak_a', 'A live', 'live', 'secret', '{read,write}', 'hash_ak_a_live',
   'bv_live_sk_', 'aaaa', '1111'),
  ('key_ak_a_test', 'org_ak_a', 'A test', 'test', 'secret', '{read,write,admin}', 'hash_ak_a_test',
   'bv_test_sk_', 'bbbb', '2222'),
  ('key_ak_b_live', 'org_ak_b', 'B live', 'live', 'secret', '{read}', 'hash_ak_b_live',
   'bv_live_sk_', 'cccc', '3333');

set local role authenticated;

-- ---------------------------------------------------------------------------------------
-- Visibility by membership role
-- ---------------------------------------------------------------------------------------
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0001","org_id":"org_ak_a","org_role":"owner"}';
select results_eq(
  'select id from api_keys order by id',
  array['key_ak_a_live', 'key_ak_a_test'],
  'an owner sees all of its organization''s keys (live and test) and no others'
);

set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0002","org_id":"org_ak_a","org_role":"admin"}';
select results_eq(
  'select id from api_keys order by id',
  array['key_ak_a_live', 'key_ak_a_test'],
  'an admin sees its organization''s keys'
);

set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0003","org_id":"org_ak_a","org_role":"member"}';
select is_empty(
  'select id from api_keys',
  'a member sees no keys'
);

-- A forged org_role claim does not help: the role is read from organization_members.
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0003","org_id":"org_ak_a","org_role":"owner"}';
select is_empty(
  'select id from api_keys',
  'a member with an org_role=owner claim still sees no keys'
);

-- Owner of A, but with claims for org B (not a member there).
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0001","org_id":"org_ak_b"}';
select is_empty(
  'select id from api_keys',
  'an owner of org A whose claims name org B sees none of B''s keys'
);

-- An API key caller (no sub): no user, so no admin.
set local request.jwt.claims =
  '{"role":"authenticated","org_id":"org_ak_a","environment":"live","key_id":"key_ak_a_live"}';
select is_empty(
  'select id from api_keys',
  'a caller without a user (API key claims) sees no keys'
);

set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000b0001","org_id":"org_ak_b"}';
select results_eq(
  'select id from api_keys order by id',
  array['key_ak_b_live'],
  'owner of org B sees only org B''s key'
);

-- ---------------------------------------------------------------------------------------
-- Column privileges: key_hash is write-only
-- ---------------------------------------------------------------------------------------
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0001","org_id":"org_ak_a"}';
select throws_ok(
  'select key_hash from api_keys',
  '42501',
  'permission denied for table api_keys',
  'authenticated cannot select key_hash'
);
select throws_ok(
  'select * from api_keys',
  '42501',
  'permission denied for table api_keys',
  'select * fails too, since it includes key_hash'
);
select throws_ok(
  $$select id from api_keys where key_hash = 'hash_ak_a_live'$$,
  '42501',
  'permission denied for table api_keys',
  'key_hash cannot be probed through a where clause either'
);
select results_eq(
  $$select id, org_id, name, environment, key_type, scopes, prefix, start, last_four,
           created_by, created_at is not null, last_used_at, expires_at, revoked_at, replaced_by
    from api_keys where id = 'key_ak_a_live'$$,
  $$values ('key_ak_a_live', 'org_ak_a', 'A live', 'live', 'secret', '{read,write}'::text[],
            'bv_live_sk_', 'aaaa', '1111', null::uuid, true, null::timestamptz,
            null::timestamptz, null::timestamptz, null::text)$$,
  'every column other than key_hash is selectable'
);

-- ---------------------------------------------------------------------------------------
-- Writes
-- ---------------------------------------------------------------------------------------
select lives_ok(
  $$insert into api_keys (name, environment, key_type, scopes, key_hash, prefix, start, last_four)
    values ('A new', 'test', 'secret', '{read}', 'hash_ak_a_new', 'bv_test_sk_', 'dddd', '4444')$$,
  'an owner can create a key (with key_hash) for its organization'
);
select results_eq(
  $$select org_id, created_by from api_keys where name = 'A new'$$,
  $$values ('org_ak_a', '00000000-0000-4000-a000-0000000a0001'::uuid)$$,
  'org_id and created_by default from the claims'
);
select throws_ok(
  $$insert into api_keys (org_id, name, environment, key_type, scopes, key_hash, prefix, start,
                          last_four)
    values ('org_ak_b', 'Planted', 'live', 'secret', '{admin}', 'hash_planted', 'bv_live_sk_',
            'eeee', '5555')$$,
  '42501',
  'permission denied for table api_keys',
  'org_id cannot be chosen on insert (no column privilege)'
);
select is(
  pg_temp.affected($$update api_keys set revoked_at = now() where id = 'key_ak_b_live'$$), 0,
  'an owner cannot revoke another organization''s key (0 rows)'
);
select is(
  pg_temp.affected($$update api_keys set revoked_at = now() where id = 'key_ak_a_live'$$), 1,
  'an owner can revoke its own organization''s key'
);
select throws_ok(
  $$update api_keys set key_hash = 'hash_swapped' where id = 'key_ak_a_test'$$,
  '42501',
  'permission denied for table api_keys',
  'key_hash cannot be updated'
);
select throws_ok(
  $$delete from api_keys where id = 'key_ak_a_test'$$,
  '42501',
  'permission denied for table api_keys',
  'keys cannot be deleted through the API role (revoke instead)'
);

set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0003","org_id":"org_ak_a"}';
select throws_ok(
  $$insert into api_keys (name, environment, key_type, scopes, key_hash, prefix, start, last_four)
    values ('Member key', 'live', 'secret', '{admin}', 'hash_member', 'bv_live_sk_', 'ffff', '6666')$$,
  '42501',
  'new row violates row-level security policy for table "api_keys"',
  'a member cannot create keys'
);
select is(
  pg_temp.affected($$update api_keys set name = 'Renamed by member' where id = 'key_ak_a_test'$$), 0,
  'a member cannot update keys (0 rows)'
);

-- A demotion takes effect at once, without a new token.
reset role;
update public.organization_members set role = 'member'
where org_id = 'org_ak_a' and user_id = '00000000-0000-4000-a000-0000000a0002';
set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000a0002","org_id":"org_ak_a","org_role":"admin"}';
select is_empty(
  'select id from api_keys',
  'an admin demoted to member immediately sees no keys, despite the stale org_role claim'
);

-- ---------------------------------------------------------------------------------------
-- Back as the superuser: nothing leaked into the other organization; anon has no access
-- ---------------------------------------------------------------------------------------
reset role;
select results_eq(
  $$select id, name, key_hash, revoked_at from public.api_keys where org_id = 'org_ak_b'$$,
  $$values ('key_ak_b_live', 'B live', 'hash_ak_b_live', null::timestamptz)$$,
  'org B''s key is unchanged and nothing was planted in org B'
);

set local role anon;
set local request.jwt.claims = '{"role":"anon","org_id":"org_ak_a"}';
select throws_ok(
  'select id, name from public.api_keys',
  '42501',
  'permission denied for table api_keys',
  'anon cannot read api_keys'
);
select throws_ok(
  $$insert into public.api_keys (name, environment, key_type, scopes, key_hash, prefix, start,
                                 last_four)
    values ('Anon key', 'live', 'secret', '{admin}', 'hash_anon', 'bv_live_sk_', 'gggg', '7777')$$,
  '42501',
  'permission denied for table api_keys',
  'anon cannot create api_keys'
);
reset role;

select * from finish();
rollback;
