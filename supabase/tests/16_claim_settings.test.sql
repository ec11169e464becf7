-- The job claim runs without JIT (20261201002000_claim_without_jit.sql): compiling its query
-- cost 45-150 ms a claim with a large backlog, against 1.4 ms for the claim itself.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(1);

select ok(
  (select 'jit=off' = any (proconfig) from pg_proc
   where oid = 'private.claim_jobs(text[], int, int, int[])'::regprocedure),
  'private.claim_jobs runs with jit = off'
);

select * from finish();
rollback;
