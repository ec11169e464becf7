-- private.authenticate_api_key: lookup by SHA-256 hash, the reason a key is unusable
-- (unknown / revoked / expired), the organization's rate-limit state for usable keys, and
-- the at-most-once-a-minute last_used_at stamp. Keys are inserted with known hashes.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(16);

insert into public.organizations (id, name, plan) values
  ('org_auth_a', 'Auth Org A', 'starter'),
  ('org_auth_b', 'Auth Org B', 'pro'),
  ('org_auth_c', 'Auth Org C', 'enterprise');

insert into public.api_keys (id, org_id, name, environment, key_type, scopes, key_hash, prefix,
                             start, last_four, expires_at, revoked_at, last_used_at) values
  ('key_auth_ok', 'org_auth_a', 'Production', 'live', 'secret', '{read,write}', 'hash_auth_ok',
   'bv_live_sk_', 'aaaa', '1111', now() + interval '30 days', null, null),
  ('key_auth_revoked', 'org_auth_b', 'Old', 'live', 'secret', '{read}', 'hash_auth_revoked',
   'bv_live_sk_', 'bbbb', '2222', null, now() - interval '1 minute', null),
  ('key_auth_expired', 'org_auth_b', 'Temp', 'test', 'secret', '{read}', 'hash_auth_expired',
   'bv_test_sk_', 'cccc', '3333', now() - interval '1 second', null, null),
  ('key_auth_grace', 'org_auth_b', 'Rotating', 'test', 'secret', '{read,write,admin}',
   'hash_auth_grace', 'bv_test_sk_', 'dddd', '4444', null, now() + interval '1 hour', null),
  ('key_auth_recent', 'org_auth_c', 'Hot', 'live', 'publishable', '{read}', 'hash_auth_recent',
   'bv_live_pk_', 'eeee', '5555', null, null, now() - interval '30 seconds'),
  ('key_auth_stale', 'org_auth_c', 'Cold', 'live', 'secret', '{read}', 'hash_auth_stale',
   'bv_live_sk_', 'ffff', '6666', null, null, now() - interval '5 minutes');

-- ---------------------------------------------------------------------------------------
-- Unusable keys
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select status, key_id, org_id, limit_per_minute
    from private.authenticate_api_key('hash_that_does_not_exist')$$,
  $$values ('unknown', null::text, null::text, null::int)$$,
  'an unknown hash is ''unknown'' and reveals nothing'
);
select results_eq(
  $$select status, key_id, org_id, limit_per_minute, exceeded
    from private.authenticate_api_key('hash_auth_revoked')$$,
  $$values ('revoked', 'key_auth_revoked', 'org_auth_b', null::int, null::text)$$,
  'a key revoked in the past is ''revoked'''
);
select results_eq(
  $$select status, key_id, org_id, limit_per_minute
    from private.authenticate_api_key('hash_auth_expired')$$,
  $$values ('expired', 'key_auth_expired', 'org_auth_b', null::int)$$,
  'a key past its expires_at is ''expired'''
);
select is_empty(
  $$select from private.rate_limit_counters where org_id = 'org_auth_b'$$,
  'rejected keys do not count against the organization''s rate limit'
);
select results_eq(
  $$select last_used_at from public.api_keys
    where id in ('key_auth_revoked', 'key_auth_expired')$$,
  $$values (null::timestamptz), (null::timestamptz)$$,
  'rejected keys are not stamped as used'
);
select is(
  (select status from private.authenticate_api_key('hash_auth_ok '))
    || '/' || (select status from private.authenticate_api_key('HASH_AUTH_OK')),
  'unknown/unknown',
  'the hash must match exactly (no trimming, case-sensitive)'
);

-- ---------------------------------------------------------------------------------------
-- Usable keys
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select status, key_id, key_name, org_id, org_name, plan, environment, key_type, scopes,
           limit_per_minute, limit_per_second, remaining, exceeded, retry_after
    from private.authenticate_api_key('hash_auth_ok')$$,
  $$values ('ok', 'key_auth_ok', 'Production', 'org_auth_a', 'Auth Org A', 'starter', 'live',
            'secret', '{read,write}'::text[], 100, 20, 99, null::text, null::int)$$,
  'a valid key is ''ok'' with its key, organization and rate-limit state'
);
select ok(
  (select reset_at % 60 = 0 and reset_at > extract(epoch from now())
   from private.authenticate_api_key('hash_auth_ok')),
  'an ok key carries reset_at, the end of the current rate-limit minute'
);
select results_eq(
  $$select pg_sequence_last_value(private.request_sequence(org_id)) - minute_base >= 1
    from private.rate_limit_counters where org_id = 'org_auth_a'$$,
  $$values (true)$$,
  'an ok key counts against its organization''s rate limit'
);
select is(
  (select last_used_at from public.api_keys where id = 'key_auth_ok'),
  now(),
  'an ok key that was never used is stamped last_used_at = now()'
);
select results_eq(
  $$select status, key_id, environment from private.authenticate_api_key('hash_auth_grace')$$,
  $$values ('ok', 'key_auth_grace', 'test')$$,
  'a key whose revocation is scheduled in the future (rotation grace period) is still ''ok'''
);
select results_eq(
  $$select status, key_type, scopes, limit_per_minute
    from private.authenticate_api_key('hash_auth_recent')$$,
  $$values ('ok', 'publishable', '{read}'::text[], null::int)$$,
  'an ok key of an enterprise organization is unlimited'
);
select is(
  (select last_used_at from public.api_keys where id = 'key_auth_recent'),
  now() - interval '30 seconds',
  'last_used_at is not rewritten when the key was used less than a minute ago'
);
select is(
  (select status from private.authenticate_api_key('hash_auth_stale')),
  'ok',
  'a key last used 5 minutes ago is ''ok'''
);
select is(
  (select last_used_at from public.api_keys where id = 'key_auth_stale'),
  now(),
  'last_used_at is refreshed when the previous use is over a minute old'
);

-- ---------------------------------------------------------------------------------------
-- The API role cannot use it to test hashes
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_auth_a","environment":"live"}';
select throws_ok(
  $$select * from private.authenticate_api_key('hash_auth_ok')$$,
  '42501',
  'permission denied for function authenticate_api_key',
  'authenticated cannot run authenticate_api_key (only the API''s service connection may)'
);
reset role;

select * from finish();
rollback;
