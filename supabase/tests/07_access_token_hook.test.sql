-- public.custom_access_token_hook, called as Supabase Auth calls it (as
-- supabase_auth_admin, with {user_id, claims, authentication_method}): adds org_id and
-- org_role of the active organization, honours app_metadata.active_org_id only for an
-- organization the user belongs to, and leaves the claims alone for a user without one.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(13);

insert into public.organizations (id, name) values
  ('org_hook_a', 'Hook Org A'),
  ('org_hook_b', 'Hook Org B'),
  ('org_hook_c', 'Hook Org C');

insert into auth.users (id, email) values
  ('00000000-0000-4000-a000-0000000c0001', 'single@hook.test'),
  ('00000000-0000-4000-a000-0000000c0002', 'multi@hook.test'),
  ('00000000-0000-4000-a000-0000000c0003', 'none@hook.test'),
  ('00000000-0000-4000-a000-0000000c0004', 'owner-c@hook.test');

insert into public.organization_members (org_id, user_id, role, created_at) values
  ('org_hook_a', '00000000-0000-4000-a000-0000000c0001', 'member', '2026-01-01'),
  -- multi: admin of B first (oldest), owner of A later; not a member of C.
  ('org_hook_b', '00000000-0000-4000-a000-0000000c0002', 'admin', '2026-01-01'),
  ('org_hook_a', '00000000-0000-4000-a000-0000000c0002', 'owner', '2026-02-01'),
  ('org_hook_c', '00000000-0000-4000-a000-0000000c0004', 'owner', '2026-01-01');

-- The event Supabase Auth sends for a user, with optional app_metadata.
create function pg_temp.hook_event(p_user uuid, p_app_metadata jsonb default '{}')
returns jsonb language sql as $$
  select jsonb_build_object(
    'user_id', p_user,
    'authentication_method', 'password',
    'claims', jsonb_build_object(
      'aud', 'authenticated', 'exp', 1893456000, 'iat', 1893452400,
      'sub', p_user, 'email', 'someone@hook.test', 'role', 'authenticated',
      'aal', 'aal1', 'session_id', '11111111-1111-4111-8111-111111111111',
      'is_anonymous', false,
      'app_metadata', '{"provider":"email","providers":["email"]}'::jsonb || p_app_metadata,
      'user_metadata', '{}'::jsonb))
$$;

-- The hook runs as supabase_auth_admin, which has no usage on schema extensions (pgTAP)
-- locally: its results are collected first, then asserted on as the superuser.
set local role supabase_auth_admin;
create temp table hook_results on commit drop as
select name, public.custom_access_token_hook(event) as result, event
from (values
  ('single', pg_temp.hook_event('00000000-0000-4000-a000-0000000c0001')),
  ('multi', pg_temp.hook_event('00000000-0000-4000-a000-0000000c0002')),
  ('multi_active_a', pg_temp.hook_event('00000000-0000-4000-a000-0000000c0002', '{"active_org_id":"org_hook_a"}')),
  ('multi_active_c', pg_temp.hook_event('00000000-0000-4000-a000-0000000c0002', '{"active_org_id":"org_hook_c"}')),
  ('multi_active_nonexistent', pg_temp.hook_event('00000000-0000-4000-a000-0000000c0002', '{"active_org_id":"org_nope"}')),
  ('single_active_b', pg_temp.hook_event('00000000-0000-4000-a000-0000000c0001', '{"active_org_id":"org_hook_b"}')),
  ('none', pg_temp.hook_event('00000000-0000-4000-a000-0000000c0003'))
) v(name, event);
reset role;

-- A membership removed takes effect at the next token.
delete from public.organization_members
where org_id = 'org_hook_b' and user_id = '00000000-0000-4000-a000-0000000c0002';
set local role supabase_auth_admin;
insert into hook_results
select 'multi_after_leave', public.custom_access_token_hook(e), e
from pg_temp.hook_event('00000000-0000-4000-a000-0000000c0002') e;
reset role;

create function pg_temp.hook_claims(p_name text) returns jsonb language sql as $$
  select result -> 'claims' from hook_results where name = p_name
$$;

select is(
  (select result from hook_results where name = 'single'),
  (select jsonb_build_object('claims',
     (event -> 'claims') || '{"org_id":"org_hook_a","org_role":"member"}')
   from hook_results where name = 'single'),
  'a member gets org_id and org_role added, every other claim unchanged'
);
select is(
  pg_temp.hook_claims('multi') ->> 'org_id',
  'org_hook_b',
  'without active_org_id, the oldest membership is the active organization'
);
select is(
  pg_temp.hook_claims('multi') ->> 'org_role',
  'admin',
  'org_role is the role in that organization'
);
select is(
  jsonb_build_object('org_id', pg_temp.hook_claims('multi_active_a') -> 'org_id',
                     'org_role', pg_temp.hook_claims('multi_active_a') -> 'org_role'),
  '{"org_id":"org_hook_a","org_role":"owner"}'::jsonb,
  'app_metadata.active_org_id of an organization the user belongs to is honoured (with its role)'
);
select is(
  pg_temp.hook_claims('multi_active_c') ->> 'org_id',
  'org_hook_b',
  'active_org_id of an organization the user does not belong to is ignored (oldest instead)'
);
select is(
  pg_temp.hook_claims('multi_active_nonexistent') ->> 'org_id',
  'org_hook_b',
  'active_org_id of a nonexistent organization is ignored'
);
select is(
  pg_temp.hook_claims('single_active_b') ->> 'org_id',
  'org_hook_a',
  'a user cannot switch into another user''s organization via active_org_id'
);
select is(
  (select result from hook_results where name = 'none'),
  (select jsonb_build_object('claims', event -> 'claims') from hook_results where name = 'none'),
  'a user without any membership gets the claims back unchanged'
);
select ok(
  not (pg_temp.hook_claims('none') ?| array['org_id', 'org_role']),
  'a user without any membership has no org_id or org_role claim'
);
select is(
  pg_temp.hook_claims('multi_after_leave') ->> 'org_id',
  'org_hook_a',
  'after leaving its oldest organization, the next token names the remaining one'
);

-- ---------------------------------------------------------------------------------------
-- Only Supabase Auth may run the hook
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims =
  '{"role":"authenticated","sub":"00000000-0000-4000-a000-0000000c0003"}';
select throws_ok(
  $$select public.custom_access_token_hook(pg_temp.hook_event('00000000-0000-4000-a000-0000000c0001'))$$,
  '42501',
  'permission denied for function custom_access_token_hook',
  'authenticated cannot execute the hook (it would reveal any user''s organization)'
);
set local role anon;
select throws_ok(
  $$select public.custom_access_token_hook(pg_temp.hook_event('00000000-0000-4000-a000-0000000c0001'))$$,
  '42501',
  'permission denied for function custom_access_token_hook',
  'anon cannot execute the hook'
);
reset role;
select ok(
  has_function_privilege('supabase_auth_admin', 'public.custom_access_token_hook(jsonb)', 'execute'),
  'supabase_auth_admin can execute the hook'
);

select * from finish();
rollback;
