-- Hardening found in review: privileges the API role must not have, references that must
-- stay inside an organization, and user authentication that follows membership changes.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(15);

insert into public.organizations (id, name, plan) values
  ('org_h_a', 'Hardening A', 'starter'),
  ('org_h_b', 'Hardening B', 'starter');
insert into auth.users (id, email) values
  ('00000000-0000-4000-a000-0000000000a1', 'h-a@test.example'),
  ('00000000-0000-4000-a000-0000000000b1', 'h-b@test.example');
insert into public.organization_members (org_id, user_id, role) values
  ('org_h_a', '00000000-0000-4000-a000-0000000000a1', 'admin');
insert into public.contacts (id, org_id, environment, type, name) values
  ('ct_h_company', 'org_h_a', 'live', 'company', 'Company'),
  ('ct_h_person', 'org_h_a', 'live', 'person', 'Person');
insert into public.api_keys (id, org_id, name, environment, key_type, scopes, key_hash, prefix,
                             start, last_four) values
  ('key_h_a', 'org_h_a', 'a', 'live', 'secret', '{read}', 'h_hash_a', 'bv_live_sk_', 'AAAA', 'aaaa'),
  ('key_h_b', 'org_h_b', 'b', 'live', 'secret', '{read}', 'h_hash_b', 'bv_live_sk_', 'BBBB', 'bbbb');

-- Membership and rate limit in one call.
select results_eq(
  $$select org_role, limit_per_minute, exceeded
    from private.authenticate_user('00000000-0000-4000-a000-0000000000a1', 'org_h_a')$$,
  $$values ('admin'::text, 100, null::text)$$,
  'authenticate_user: a member gets their current role and a counted request'
);
select is_empty(
  $$select * from private.authenticate_user('00000000-0000-4000-a000-0000000000b1', 'org_h_a')$$,
  'authenticate_user: a non-member (or removed member) gets no row'
);
select is_empty(
  $$select * from private.consume_rate_limit('org_does_not_exist')$$,
  'consume_rate_limit: an unknown organization gets no row (never "unlimited")'
);

-- The database itself refuses what the API checks with friendlier errors.
select throws_ok(
  $$insert into public.contacts (org_id, environment, type, name, company_id)
    values ('org_h_a', 'live', 'person', 'Bad link', 'ct_h_person')$$,
  '23514', null,
  'company_id must point at a company contact'
);
select throws_ok(
  $$update public.contacts set company_id = 'ct_h_company' where id = 'ct_h_company'$$,
  '23514', null,
  'a contact cannot be its own company'
);
select lives_ok(
  $$insert into public.contacts (org_id, environment, type, name, company_id)
    values ('org_h_a', 'live', 'person', 'Good link', 'ct_h_company')$$,
  'a person can link to a company of the same organization'
);
select throws_ok(
  $$update public.contacts set type = 'person' where id = 'ct_h_company'$$,
  '23514', null,
  'a company with people linked to it cannot become a person'
);
select throws_ok(
  $$insert into public.contacts (org_id, environment, type, name, company_id)
    values ('org_h_b', 'live', 'person', 'Cross-tenant link', 'ct_h_company')$$,
  '23503', null,
  'even a writer that bypasses RLS cannot link to another organization''s company (composite FK)'
);
select throws_ok(
  $$update public.api_keys set replaced_by = 'key_h_b' where id = 'key_h_a'$$,
  '23503', null,
  'replaced_by cannot point at another organization''s key'
);

-- Privileges of the API role: nothing that bypasses row-level security.
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_h_a","environment":"live"}';
select throws_ok('truncate public.contacts', '42501', null,
  'authenticated cannot TRUNCATE contacts (TRUNCATE ignores RLS)');
select throws_ok('truncate public.events', '42501', null, 'authenticated cannot TRUNCATE events');
select throws_ok(
  $$select * from private.consume_rate_limit('org_h_a')$$, '42501', null,
  'authenticated cannot execute private.consume_rate_limit'
);
select throws_ok(
  $$select * from private.authenticate_user('00000000-0000-4000-a000-0000000000a1', 'org_h_a')$$,
  '42501', null,
  'authenticated cannot execute private.authenticate_user'
);
reset role;

-- Functions that run with their owner's rights must not resolve names through the caller's
-- search_path; the hot-path functions that dropped the clause run with the caller's rights.
select is_empty(
  $$select p.oid::regprocedure::text from pg_proc p
    where p.prosecdef and p.pronamespace in ('private'::regnamespace, 'public'::regnamespace)
      and not exists (select from unnest(p.proconfig) c where c like 'search_path=%')$$,
  'every SECURITY DEFINER function in private and public pins its search_path'
);
select results_eq(
  $$select private.request_org_id(), private.request_environment()
    from (select set_config('request.jwt.claims', '{"org_id":"","environment":""}', true)) s$$,
  $$values (null::text, 'live'::text)$$,
  'request_org_id: an empty org claim is no organization; an empty environment is live'
);

select * from finish();
rollback;
