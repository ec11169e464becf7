-- private.claim_idempotency_key and the idempotency_keys table: new -> in_flight ->
-- (response stored by the handler as `authenticated`) -> replay; mismatch for another
-- request; stale in-flight and expired records can be claimed again; keys are scoped by
-- organization and environment.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(22);

\ir _helpers.psql

insert into public.organizations (id, name) values
  ('org_idem_a', 'Idempotency Org A'),
  ('org_idem_b', 'Idempotency Org B');

-- ---------------------------------------------------------------------------------------
-- The normal life of a key
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select * from private.claim_idempotency_key('org_idem_a', 'live', 'k1', 'hash1')$$,
  $$values ('new', null::int, null::jsonb)$$,
  'a key seen for the first time is ''new'''
);
select results_eq(
  $$select request_hash, response_status, locked_at = now()
    from private.idempotency_keys
    where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k1'$$,
  $$values ('hash1', null::int, true)$$,
  'claiming records the request hash, no response, locked now'
);
select results_eq(
  $$select * from private.claim_idempotency_key('org_idem_a', 'live', 'k1', 'hash1')$$,
  $$values ('in_flight', null::int, null::jsonb)$$,
  'the same key and request while the first is running is ''in_flight'''
);
select results_eq(
  $$select outcome from private.claim_idempotency_key('org_idem_a', 'live', 'k1', 'hash2')$$,
  $$values ('mismatch')$$,
  'the same key with another request while the first is running is ''mismatch'''
);
select results_eq(
  $$select outcome from private.claim_idempotency_key('org_idem_a', 'test', 'k1', 'hash1')$$,
  $$values ('new')$$,
  'the same key in the other environment is a separate key (''new'')'
);
select results_eq(
  $$select outcome from private.claim_idempotency_key('org_idem_b', 'live', 'k1', 'hash1')$$,
  $$values ('new')$$,
  'the same key in another organization is a separate key (''new'')'
);

-- The handler stores the response in its own transaction, as `authenticated`.
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_idem_b","environment":"live"}';
select is(
  pg_temp.affected($$update private.idempotency_keys
    set response_status = 500, response_body = '{"poisoned":true}'
    where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k1'$$),
  0,
  'another organization cannot store a response on the record'
);
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_idem_a","environment":"test"}';
select is(
  pg_temp.affected($$update private.idempotency_keys
    set response_status = 500, response_body = '{"poisoned":true}'
    where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k1'$$),
  0,
  'the other environment of the same organization cannot store a response on the record'
);
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_idem_a","environment":"live"}';
select is(
  pg_temp.affected($$update private.idempotency_keys
    set response_status = 201, response_body = '{"id":"ct_1","name":"Ada"}'
    where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k1'$$),
  1,
  'the owning organization and environment can store the response'
);
select throws_ok(
  $$select request_hash from private.idempotency_keys$$,
  '42501',
  'permission denied for table idempotency_keys',
  'authenticated cannot read request hashes'
);
select throws_ok(
  $$update private.idempotency_keys set request_hash = 'forged'$$,
  '42501',
  'permission denied for table idempotency_keys',
  'authenticated cannot change the request hash'
);
select throws_ok(
  $$select * from private.claim_idempotency_key('org_idem_a', 'live', 'k9', 'hash9')$$,
  '42501',
  'permission denied for function claim_idempotency_key',
  'authenticated cannot claim keys itself'
);
reset role;

select results_eq(
  $$select * from private.claim_idempotency_key('org_idem_a', 'live', 'k1', 'hash1')$$,
  $$values ('replay', 201, '{"id":"ct_1","name":"Ada"}'::jsonb)$$,
  'after the response is stored, the same request is a ''replay'' of it'
);
select results_eq(
  $$select * from private.claim_idempotency_key('org_idem_a', 'live', 'k1', 'hash2')$$,
  $$values ('mismatch', null::int, null::jsonb)$$,
  'after the response is stored, another request is ''mismatch'' and gets no response'
);

-- ---------------------------------------------------------------------------------------
-- Abandoned and expired records
-- ---------------------------------------------------------------------------------------
select is(
  (select outcome from private.claim_idempotency_key('org_idem_a', 'live', 'k2', 'hash1')),
  'new',
  'k2 is claimed'
);
update private.idempotency_keys set locked_at = now() - interval '1 minute'
where org_id = 'org_idem_a' and idempotency_key = 'k2';
select is(
  (select outcome from private.claim_idempotency_key('org_idem_a', 'live', 'k2', 'hash1')),
  'in_flight',
  'a record in flight for 1 minute is still ''in_flight'''
);
update private.idempotency_keys set locked_at = now() - interval '3 minutes'
where org_id = 'org_idem_a' and idempotency_key = 'k2';
select is(
  (select outcome from private.claim_idempotency_key('org_idem_a', 'live', 'k2', 'hash3')),
  'new',
  'a record left in flight for over 2 minutes can be claimed again (''new''), even by another request'
);
select results_eq(
  $$select request_hash, response_status, locked_at = now() from private.idempotency_keys
    where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k2'$$,
  $$values ('hash3', null::int, true)$$,
  'the re-claimed record belongs to the new request and is locked again'
);

-- A completed record whose request was long ago is not stale: it replays.
update private.idempotency_keys
set locked_at = now() - interval '3 hours', created_at = now() - interval '3 hours'
where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k1';
select is(
  (select outcome from private.claim_idempotency_key('org_idem_a', 'live', 'k1', 'hash1')),
  'replay',
  'a completed record keeps replaying after its lock is old (within 24 hours)'
);

update private.idempotency_keys set created_at = now() - interval '25 hours'
where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k1';
select results_eq(
  $$select * from private.claim_idempotency_key('org_idem_a', 'live', 'k1', 'hash2')$$,
  $$values ('new', null::int, null::jsonb)$$,
  'a record older than 24 hours is expired: the key is ''new'' again'
);
select results_eq(
  $$select request_hash, response_status, response_body, created_at = now()
    from private.idempotency_keys
    where org_id = 'org_idem_a' and environment = 'live' and idempotency_key = 'k1'$$,
  $$values ('hash2', null::int, null::jsonb, true)$$,
  'the expired record is reset: new hash, stored response cleared, created now'
);

-- ---------------------------------------------------------------------------------------
-- anon
-- ---------------------------------------------------------------------------------------
set local role anon;
select throws_ok(
  $$select idempotency_key from private.idempotency_keys$$,
  '42501',
  'permission denied for table idempotency_keys',
  'anon cannot read idempotency records'
);
reset role;

select * from finish();
rollback;
