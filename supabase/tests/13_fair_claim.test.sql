-- Fair claims (20261201000200_fair_job_claim.sql): private.claim_jobs takes due jobs in
-- turns across organizations, and within an organization across job kinds, instead of
-- oldest first. The lease itself (token, available_at, claims) is checked in
-- 11_job_queue_and_workflows.test.sql.
-- Everything runs in one transaction that is rolled back: the stack's worker never sees
-- the jobs created here.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(11);

\ir _helpers.psql

insert into public.organizations (id, name) values
  ('org_t13_a', 'Fair Org A'),
  ('org_t13_b', 'Fair Org B'),
  ('org_t13_c', 'Fair Org C');

-- Jobs other tests left due would take part in the claims: make them wait until after
-- this transaction (it is rolled back, so nothing changes for them).
update private.jobs set available_at = now() + interval '1 hour'
where available_at <= now() and org_id not like 'org_t13_%';

-- Org A floods the queue: 100 due workflow jobs, all older than org B's one job.
insert into private.jobs (kind, ref, org_id, environment, available_at)
select 'workflow', 'wfi_t13_a_' || n, 'org_t13_a', 'test',
       now() - interval '1 hour' + n * interval '1 second'
from generate_series(1, 100) as n;
insert into private.jobs (kind, ref, org_id, environment, available_at)
values ('workflow', 'wfi_t13_b_1', 'org_t13_b', 'live', now() - interval '1 second');

-- =======================================================================================
-- 1. One turn per organization
-- =======================================================================================
savepoint before_claims;
select results_eq(
  $$select org_id, count(*)::int from private.claim_jobs(array['workflow', 'webhook'], 2, 30)
    group by org_id order by org_id$$,
  $$values ('org_t13_a', 1), ('org_t13_b', 1)$$,
  'org A with 100 due jobs and org B with 1: a claim of 2 takes one of each'
);
select results_eq(
  $$select ref from private.jobs where org_id = 'org_t13_a' and lease_token is not null$$,
  array['wfi_t13_a_1'],
  'within org A the oldest due job is the one claimed'
);
rollback to savepoint before_claims;

select results_eq(
  $$select count(*)::int, count(distinct id)::int
    from private.claim_jobs(array['workflow', 'webhook'], 1000, 30)$$,
  $$values (101, 101)$$,
  'a claim larger than the queue takes every due job once'
);
rollback to savepoint before_claims;

-- =======================================================================================
-- 2. Organizations that hold fewer leases go first
-- =======================================================================================
-- A's flood already runs in 16 worker slots: B's job takes the next free slot.
update private.jobs set lease_token = gen_random_uuid(), available_at = now() + interval '30 s'
where org_id = 'org_t13_a'
  and ref in (select 'wfi_t13_a_' || n from generate_series(1, 16) as n);
select results_eq(
  $$select ref from private.claim_jobs(array['workflow', 'webhook'], 1, 30)$$,
  array['wfi_t13_b_1'],
  'with org A holding 16 leases, a claim of 1 takes org B''s job, though A''s are older'
);
-- Org C, idle until now, holds no lease: its job beats A's next one too.
insert into private.jobs (kind, ref, org_id, environment)
values ('workflow', 'wfi_t13_c_1', 'org_t13_c', 'live');
select results_eq(
  $$select org_id from private.claim_jobs(array['workflow', 'webhook'], 2, 30) order by org_id$$,
  array['org_t13_a', 'org_t13_c'],
  'with org B served and C newly due, a claim of 2 takes C''s job and then A''s oldest'
);
rollback to savepoint before_claims;

-- =======================================================================================
-- 3. Within an organization, kinds take turns
-- =======================================================================================
-- Org A also has one webhook delivery due, newer than all its workflow jobs.
insert into private.jobs (kind, ref, org_id, environment)
values ('webhook', 'whd_t13_a_1', 'org_t13_a', 'test');
select results_eq(
  $$select kind, count(*)::int from private.claim_jobs(array['workflow', 'webhook'], 3, 30)
    where org_id = 'org_t13_a' group by kind order by kind$$,
  $$values ('webhook', 1), ('workflow', 1)$$,
  'a claim of 3 takes org B''s job and one of each kind of org A''s, not two workflow jobs'
);
rollback to savepoint before_claims;

-- A worker that runs only one kind is given only that kind.
select is_empty(
  $$select 1 from private.claim_jobs(array['webhook'], 10, 30)
    where org_id like 'org_t13_%'$$,
  'a claim for webhooks takes no workflow job'
);

-- =======================================================================================
-- 4. Per-kind caps (20261201000600_job_registry.sql): the claim takes at most the room
--    each kind has left in the worker, whatever the turns say.
-- =======================================================================================
select results_eq(
  $$select count(*)::int from private.claim_jobs(array['workflow', 'webhook'], 10, 30,
                                                 array[2, 10]) where org_id like 'org_t13_%'$$,
  array[2],
  'a worker with room for 2 workflow jobs claims 2, though 10 slots are free'
);
rollback to savepoint before_claims;
select results_eq(
  $$select count(*)::int from private.claim_jobs(array['workflow', 'webhook'], 10, 30,
                                                 array[0, 10]) where org_id like 'org_t13_%'$$,
  array[0],
  'a kind with no room left is not claimed at all'
);
rollback to savepoint before_claims;
select results_eq(
  $$select count(*)::int from private.claim_jobs(array['workflow', 'webhook'], 10, 30)
    where org_id like 'org_t13_%'$$,
  array[10],
  'without caps the claim fills every free slot'
);
rollback to savepoint before_claims;
-- The kind CHECK constraint is gone (the registry in the code is the list); names are checked.
select lives_ok(
  $$insert into private.jobs (kind, ref, org_id, environment)
    values ('send_message', 't13_any', 'org_t13_a', 'live')$$,
  'a job of any registered-looking kind can be queued'
);

select * from finish();
rollback;
