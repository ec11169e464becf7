-- The job queue (private.jobs and its lease functions, the worker wake-up through pg_net)
-- and workflows: row-level security of the four workflow tables, starting instances (by
-- hand, by events, by cron), the instance <-> job coupling, the privileges of the API
-- roles on schema private, and the sandbox clean-up of workflows.
-- Everything runs in one transaction that is rolled back: the stack's worker never sees
-- the jobs created here.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(103);

\ir _helpers.psql

-- ---------------------------------------------------------------------------------------
-- Fixtures (as the superuser, which bypasses RLS). Finished instances queue no job.
-- ---------------------------------------------------------------------------------------
insert into public.organizations (id, name) values
  ('org_t11_a', 'Queue Org A'),
  ('org_t11_b', 'Queue Org B');

insert into public.workflows (id, org_id, environment, name, status, trigger_type,
                              cron_expression, timezone, trigger_events, concurrency, version)
values
  ('wf_t11_a_live', 'org_t11_a', 'live', 'A live', 'active', 'manual', null, null, null,
   'parallel', 2),
  ('wf_t11_a_single', 'org_t11_a', 'live', 'A single', 'active', 'manual', null, null, null,
   'single', 1),
  ('wf_t11_a_inactive', 'org_t11_a', 'live', 'A inactive', 'inactive', 'manual', null, null,
   null, 'parallel', 1),
  ('wf_t11_a_archived', 'org_t11_a', 'live', 'A archived', 'archived', 'manual', null, null,
   null, 'parallel', 1),
  ('wf_t11_a_test', 'org_t11_a', 'test', 'A sandbox', 'active', 'manual', null, null, null,
   'parallel', 1),
  ('wf_t11_b_live', 'org_t11_b', 'live', 'B live', 'active', 'manual', null, null, null,
   'parallel', 1);

insert into public.workflow_versions (workflow_id, version, org_id, environment, steps) values
  ('wf_t11_a_live', 1, 'org_t11_a', 'live', '[{"id":"s1"}]'),
  ('wf_t11_a_live', 2, 'org_t11_a', 'live', '[{"id":"s1"},{"id":"s2"},{"id":"s3"}]'),
  ('wf_t11_a_single', 1, 'org_t11_a', 'live', '[{"id":"s1"},{"id":"s2"}]'),
  ('wf_t11_a_inactive', 1, 'org_t11_a', 'live', '[{"id":"s1"}]'),
  ('wf_t11_a_archived', 1, 'org_t11_a', 'live', '[{"id":"s1"}]'),
  ('wf_t11_a_test', 1, 'org_t11_a', 'test', '[{"id":"s1"}]'),
  ('wf_t11_b_live', 1, 'org_t11_b', 'live', '[{"id":"s1"}]');

insert into public.workflow_instances (id, org_id, environment, workflow_id, workflow_version,
                                       status, total_steps)
values
  ('wfi_t11_a_live', 'org_t11_a', 'live', 'wf_t11_a_live', 1, 'completed', 1),
  ('wfi_t11_a_test', 'org_t11_a', 'test', 'wf_t11_a_test', 1, 'completed', 1),
  ('wfi_t11_b_live', 'org_t11_b', 'live', 'wf_t11_b_live', 1, 'completed', 1);

insert into public.workflow_step_runs (instance_id, step_id, position, type, org_id, environment,
                                       status)
values
  ('wfi_t11_a_live', 's1', 1, 'log', 'org_t11_a', 'live', 'completed'),
  ('wfi_t11_a_test', 's1', 1, 'log', 'org_t11_a', 'test', 'completed'),
  ('wfi_t11_b_live', 's1', 1, 'log', 'org_t11_b', 'live', 'completed');

-- =======================================================================================
-- 1. Row-level security of workflows, versions, instances and step runs
-- =======================================================================================
set local role authenticated;

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_t11_a","environment":"live"}';
select results_eq(
  'select id from workflows order by id',
  array['wf_t11_a_archived', 'wf_t11_a_inactive', 'wf_t11_a_live', 'wf_t11_a_single'],
  'org A live sees only its own live workflows (not sandbox, not org B, not seed orgs)'
);
select results_eq(
  'select workflow_id, version from workflow_versions order by 1, 2',
  $$values ('wf_t11_a_archived', 1), ('wf_t11_a_inactive', 1), ('wf_t11_a_live', 1),
           ('wf_t11_a_live', 2), ('wf_t11_a_single', 1)$$,
  'org A live sees only its own live workflow versions'
);
select results_eq(
  'select id from workflow_instances order by id',
  array['wfi_t11_a_live'],
  'org A live sees only its own live instances'
);
select results_eq(
  'select instance_id, step_id from workflow_step_runs order by 1, 2',
  $$values ('wfi_t11_a_live', 's1')$$,
  'org A live sees only its own live step runs'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_t11_b","environment":"live"}';
select results_eq(
  'select id from workflows order by id',
  array['wf_t11_b_live'],
  'org B live sees only its own workflow'
);
select is_empty(
  $$select 1 from workflow_versions where workflow_id like 'wf_t11_a%'
    union all select 1 from workflow_instances where org_id = 'org_t11_a'
    union all select 1 from workflow_step_runs where org_id = 'org_t11_a'$$,
  'org B sees none of org A''s versions, instances or step runs'
);

set local request.jwt.claims = '{"role":"authenticated","org_id":"org_t11_a","environment":"test"}';
select results_eq(
  $$select 'wf:' || id from workflows
    union all select 'v:' || workflow_id || '/' || version from workflow_versions
    union all select 'i:' || id from workflow_instances
    union all select 's:' || instance_id || '/' || step_id from workflow_step_runs
    order by 1$$,
  array['i:wfi_t11_a_test', 's:wfi_t11_a_test/s1', 'v:wf_t11_a_test/1', 'wf:wf_t11_a_test'],
  'org A sandbox sees only its sandbox rows in all four tables, none of the live ones'
);

-- Writes as org A live.
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_t11_a","environment":"live"}';
select lives_ok(
  $$insert into workflows (id, name) values ('wf_t11_a_new', 'New')$$,
  'org A live can insert a workflow without org_id/environment'
);
select results_eq(
  $$select org_id, environment from workflows where id = 'wf_t11_a_new'$$,
  $$values ('org_t11_a', 'live')$$,
  'the workflow''s org_id and environment default from the claims'
);
select throws_ok(
  $$insert into workflows (name, org_id) values ('Intruder', 'org_t11_b')$$,
  '42501', 'new row violates row-level security policy for table "workflows"',
  'cannot insert a workflow for another organization'
);
select throws_ok(
  $$insert into workflows (name, environment) values ('Leak', 'test')$$,
  '42501', 'new row violates row-level security policy for table "workflows"',
  'a live caller cannot insert a sandbox workflow'
);
select lives_ok(
  $$insert into workflow_versions (workflow_id, version, steps)
    values ('wf_t11_a_new', 1, '[{"id":"s1"}]')$$,
  'a version can be added to an own workflow'
);
select throws_ok(
  $$insert into workflow_versions (workflow_id, version, steps)
    values ('wf_t11_b_live', 2, '[{"id":"s1"}]')$$,
  '42501', 'new row violates row-level security policy for table "workflow_versions"',
  'a version (with own org_id) cannot be attached to another organization''s workflow'
);
select throws_ok(
  $$insert into workflow_versions (workflow_id, version, steps)
    values ('wf_t11_a_test', 2, '[{"id":"s1"}]')$$,
  '42501', 'new row violates row-level security policy for table "workflow_versions"',
  'a live version cannot be attached to the same organization''s sandbox workflow'
);
select throws_ok(
  $$insert into workflow_instances (workflow_id, workflow_version, total_steps, status, org_id)
    values ('wf_t11_a_live', 2, 3, 'completed', 'org_t11_b')$$,
  '42501', 'new row violates row-level security policy for table "workflow_instances"',
  'cannot insert an instance for another organization'
);
select lives_ok(
  $$insert into workflow_step_runs (instance_id, step_id, position, type, status)
    values ('wfi_t11_a_live', 's2', 2, 'log', 'completed')$$,
  'a step run can be added to an own instance'
);
select throws_ok(
  $$insert into workflow_step_runs (instance_id, step_id, position, type, status)
    values ('wfi_t11_b_live', 's9', 9, 'log', 'completed')$$,
  '42501', 'new row violates row-level security policy for table "workflow_step_runs"',
  'a step run (with own org_id) cannot be attached to another organization''s instance'
);
select throws_ok(
  $$insert into workflow_step_runs (instance_id, step_id, position, type, status)
    values ('wfi_t11_a_test', 's9', 9, 'log', 'completed')$$,
  '42501', 'new row violates row-level security policy for table "workflow_step_runs"',
  'a live step run cannot be attached to the same organization''s sandbox instance'
);
select is(
  pg_temp.affected($$update workflows set name = 'Hacked' where id = 'wf_t11_b_live'$$)
  + pg_temp.affected($$update workflow_instances set status = 'cancelled' where id = 'wfi_t11_b_live'$$)
  + pg_temp.affected($$update workflow_step_runs set status = 'failed' where instance_id = 'wfi_t11_b_live'$$)
  + pg_temp.affected($$update workflows set name = 'Hacked' where id = 'wf_t11_a_test'$$),
  0,
  'updates of another organization''s (or environment''s) workflow rows affect 0 rows'
);

-- The composite foreign key to workflow_versions bypasses RLS, so the instances policy
-- checks that workflow_id is a workflow the caller can see. Status 'completed' so no job
-- is queued if it were let through.
select throws_ok(
  $$insert into workflow_instances (id, workflow_id, workflow_version, total_steps, status)
    values ('wfi_t11_cross', 'wf_t11_b_live', 1, 1, 'completed')$$,
  '42501', 'new row violates row-level security policy for table "workflow_instances"',
  'an instance (with own org_id) cannot be attached to another organization''s workflow'
);
reset role;
delete from public.workflow_instances where id = 'wfi_t11_cross';

-- anon has no access at all, even with organization claims.
set local role anon;
set local request.jwt.claims = '{"role":"anon","org_id":"org_t11_a","environment":"live"}';
select throws_ok('select 1 from public.workflows', '42501',
  'permission denied for table workflows', 'anon cannot read workflows');
select throws_ok('select 1 from public.workflow_versions', '42501',
  'permission denied for table workflow_versions', 'anon cannot read workflow_versions');
select throws_ok('select 1 from public.workflow_instances', '42501',
  'permission denied for table workflow_instances', 'anon cannot read workflow_instances');
select throws_ok('select 1 from public.workflow_step_runs', '42501',
  'permission denied for table workflow_step_runs', 'anon cannot read workflow_step_runs');
select throws_ok(
  $$insert into public.workflows (name) values ('Anon')$$, '42501',
  'permission denied for table workflows', 'anon cannot insert workflows');
select throws_ok(
  $$select * from private.start_workflow_instance('wf_t11_a_live', '{}', '{"type":"manual"}')$$,
  '42501', 'permission denied for function start_workflow_instance',
  'anon cannot execute private.start_workflow_instance');
reset role;

-- =======================================================================================
-- 2. private.start_workflow_instance as the API role
-- =======================================================================================
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_t11_a","environment":"live"}';

select results_eq(
  $$select org_id, environment, workflow_id, workflow_version, exclusive, status, current_step,
           total_steps, input, trigger, chain_depth
    from private.start_workflow_instance('wf_t11_a_live', '{"x":1}', '{"type":"manual"}')$$,
  $$values ('org_t11_a', 'live', 'wf_t11_a_live', 2, false, 'running', 1, 3,
            '{"x":1}'::jsonb, '{"type":"manual"}'::jsonb, 0)$$,
  'start_workflow_instance starts a running instance of the current version (2) with its step count'
);
select is_empty(
  $$select * from private.start_workflow_instance('wf_t11_a_inactive', '{}', '{"type":"manual"}')$$,
  'an inactive workflow is not started (no row)'
);
select is_empty(
  $$select * from private.start_workflow_instance('wf_t11_a_archived', '{}', '{"type":"manual"}')$$,
  'an archived workflow is not started (no row)'
);
select is_empty(
  $$select * from private.start_workflow_instance('wf_t11_b_live', '{}', '{"type":"manual"}')$$,
  'another organization''s workflow is not started (no row)'
);
select is_empty(
  $$select * from private.start_workflow_instance('wf_t11_a_test', '{}', '{"type":"manual"}')$$,
  'the same organization''s sandbox workflow is not started from live (no row)'
);

reset role;
select results_eq(
  $$select j.kind, j.ref = i.id, j.org_id, j.environment, j.lease_token is null, j.claims
    from private.jobs j join public.workflow_instances i on j.ref = i.id
    where i.workflow_id = 'wf_t11_a_live' and i.status = 'running'$$,
  $$values ('workflow', true, 'org_t11_a', 'live', true, 0)$$,
  'the started instance queued exactly one unclaimed workflow job of its organization'
);
select is(
  (select count(*)::int from private.jobs
   where org_id in ('org_t11_a', 'org_t11_b')
     and ref not in (select id from public.workflow_instances)),
  0,
  'the refused starts queued no job'
);
set local role authenticated;

-- Single concurrency.
select results_eq(
  $$select exclusive, status from private.start_workflow_instance(
      'wf_t11_a_single', '{}', '{"type":"manual"}')$$,
  $$values (true, 'running')$$,
  'a single-concurrency workflow starts an exclusive instance'
);
select throws_ok(
  $$select * from private.start_workflow_instance('wf_t11_a_single', '{}', '{"type":"manual"}')$$,
  '23505', null,
  'a second instance while one is running raises unique_violation'
);
select is(
  pg_temp.affected($$update workflow_instances set status = 'completed', finished_at = now()
                     where workflow_id = 'wf_t11_a_single' and status = 'running'$$),
  1,
  'the running single instance is completed'
);
select results_eq(
  $$select status from private.start_workflow_instance('wf_t11_a_single', '{}', '{"type":"manual"}')$$,
  array['running'],
  'once it has finished, a new instance of the single-concurrency workflow starts'
);

-- =======================================================================================
-- 3. A finished instance's job is deleted
-- =======================================================================================
select is(
  (select count(*)::int from private.start_workflow_instance('wf_t11_a_live', '{"end":"completed"}', '{"type":"manual"}'))
  + (select count(*)::int from private.start_workflow_instance('wf_t11_a_live', '{"end":"failed"}', '{"type":"manual"}'))
  + (select count(*)::int from private.start_workflow_instance('wf_t11_a_live', '{"end":"cancelled"}', '{"type":"manual"}')),
  3,
  'three more instances started'
);
select is(
  pg_temp.affected($$update workflow_instances set status = input ->> 'end'
                     where workflow_id = 'wf_t11_a_live' and input ? 'end'$$),
  3,
  'the API role finishes them as completed, failed and cancelled'
);
reset role;
select results_eq(
  $$select i.input ->> 'end', count(j.id)::int
    from public.workflow_instances i left join private.jobs j on j.kind = 'workflow' and j.ref = i.id
    where i.workflow_id = 'wf_t11_a_live' and i.input ? 'end'
    group by 1 order by 1$$,
  $$values ('cancelled', 0), ('completed', 0), ('failed', 0)$$,
  'completing, failing or cancelling an instance deletes its job'
);
select results_eq(
  $$select i.workflow_id, count(*)::int, count(j.id)::int
    from public.workflow_instances i left join private.jobs j on j.kind = 'workflow' and j.ref = i.id
    where i.workflow_id in ('wf_t11_a_live', 'wf_t11_a_single') and i.status = 'running'
    group by 1 order by 1$$,
  $$values ('wf_t11_a_live', 1, 1), ('wf_t11_a_single', 1, 1)$$,
  'the still running instances (one per workflow) keep their jobs'
);

-- =======================================================================================
-- 4. Queue functions (as the service)
-- =======================================================================================
insert into private.jobs (kind, ref, org_id, environment, available_at) values
  ('webhook', 'whd_t11_due', 'org_t11_a', 'live', now()),
  ('webhook', 'whd_t11_later', 'org_t11_a', 'live', now() + interval '1 hour');

select results_eq(
  $$select ref from private.claim_jobs(array['webhook'], 1000, 30)
    where org_id = 'org_t11_a' order by ref$$,
  array['whd_t11_due'],
  'claim_jobs returns the due job only (not one available in an hour)'
);
select results_eq(
  $$select lease_token is not null, claims, available_at = now() + interval '30 seconds'
    from private.jobs where ref = 'whd_t11_due'$$,
  $$values (true, 1, true)$$,
  'claiming sets a lease token, pushes available_at forward by the lease, counts the claim'
);
select id as due_job, lease_token as token1 from private.jobs where ref = 'whd_t11_due' \gset
select is_empty(
  $$select 1 from private.claim_jobs(array['webhook'], 1000, 30) where org_id = 'org_t11_a'$$,
  'a leased job is not claimed again'
);

update private.jobs set available_at = now() - interval '1 second' where ref = 'whd_t11_due';
select results_eq(
  $$select ref from private.claim_jobs(array['webhook'], 1000, 30) where org_id = 'org_t11_a'$$,
  array['whd_t11_due'],
  'a job whose lease ran out is claimable again'
);
select lease_token as token2 from private.jobs where ref = 'whd_t11_due' \gset
select results_eq(
  format('select lease_token <> %L::uuid, claims from private.jobs where id = %s',
         :'token1', :due_job),
  $$values (true, 2)$$,
  'the new claim has a new lease token and counts a second claim'
);

select ok(private.hold_lease(:due_job, :'token2', 120), 'hold_lease with the current token: true');
select is(
  (select available_at from private.jobs where id = :due_job),
  now() + interval '120 seconds',
  'hold_lease extends the lease'
);
select is(private.hold_lease(:due_job, :'token1', 600), false,
  'hold_lease with the token of the expired lease: false');
select is(private.reschedule_job(:due_job, :'token1', now() + interval '1 day'), false,
  'reschedule_job with a stale token returns false');
select is(private.finish_job(:due_job, :'token1'), false,
  'finish_job with a stale token returns false');
select results_eq(
  format('select lease_token = %L::uuid, available_at = now() + interval ''120 seconds'' '
         'from private.jobs where id = %s', :'token2', :due_job),
  $$values (true, true)$$,
  'the stale token''s hold_lease, reschedule_job and finish_job changed nothing'
);

-- The API role: no access to the table or to claim_jobs; the lease functions need the token.
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_t11_a","environment":"live"}';
select throws_ok('select * from private.jobs', '42501', 'permission denied for table jobs',
  'authenticated cannot read private.jobs');
select throws_ok(
  $$insert into private.jobs (kind, ref, org_id, environment)
    values ('webhook', 'whd_t11_x', 'org_t11_a', 'live')$$,
  '42501', 'permission denied for table jobs', 'authenticated cannot insert into private.jobs');
select throws_ok(
  $$update private.jobs set available_at = now()$$,
  '42501', 'permission denied for table jobs', 'authenticated cannot update private.jobs');
select throws_ok(
  $$select * from private.claim_jobs(array['webhook'], 10, 30)$$,
  '42501', 'permission denied for function claim_jobs',
  'authenticated cannot execute claim_jobs');
select throws_ok('select * from private.settings', '42501',
  'permission denied for table settings', 'authenticated cannot read private.settings');
select is(private.hold_lease(:due_job, gen_random_uuid(), 3600), false,
  'authenticated may call hold_lease, but without the token it holds nothing');
select is(private.finish_job(:due_job, gen_random_uuid()), false,
  'nor can it finish a job without the token');
select ok(private.reschedule_job(:due_job, :'token2', now() + interval '5 minutes'),
  'with the token, authenticated (a worker acting for the org) can reschedule the job');
reset role;
select results_eq(
  format('select lease_token is null, available_at = now() + interval ''5 minutes'', claims '
         'from private.jobs where id = %s', :due_job),
  $$values (true, true, 0)$$,
  'a planned reschedule_job cleared the lease, set the new time and restarted the claim count'
);
select is(private.hold_lease(:due_job, :'token2', 60), false,
  'after reschedule_job the old token holds nothing any more');

update private.jobs set available_at = now() - interval '1 second' where ref = 'whd_t11_due';
select results_eq(
  $$select ref from private.claim_jobs(array['webhook'], 1000, 30) where org_id = 'org_t11_a'$$,
  array['whd_t11_due'],
  'the rescheduled job is claimed again when due'
);
select lease_token as token3 from private.jobs where ref = 'whd_t11_due' \gset
select ok(private.finish_job(:due_job, :'token3'), 'finish_job with the current token: true');
select is_empty(format('select 1 from private.jobs where id = %s', :due_job),
  'finish_job deleted the job');

-- =======================================================================================
-- 5. Privileges on schema private
-- =======================================================================================
-- anon: every function in private, webhook ones included (anon needs nothing but the
-- helpers that RLS policies and column defaults call).
select set_eq(
  $$select p.oid::regprocedure::text from pg_proc p
    where p.pronamespace = 'private'::regnamespace
      and has_function_privilege('anon', p.oid, 'execute')$$,
  array['private.new_id(text)', 'private.request_org_id()', 'private.request_environment()'],
  'anon can execute exactly new_id, request_org_id and request_environment in private'
);
-- authenticated: the functions of the migrations read here (others, like webhooks', are
-- checked where they are defined; none of them is executable by PUBLIC, next assertion).
select set_eq(
  $$select p.oid::regprocedure::text from pg_proc p
    where p.pronamespace = 'private'::regnamespace
      and has_function_privilege('authenticated', p.oid, 'execute')
      and p.oid::regprocedure::text = any (array[
        'private.new_id(text)', 'private.request_org_id()', 'private.request_environment()',
        'private.is_org_admin()', 'private.consume_rate_limit(text)',
        'private.authenticate_api_key(text)', 'private.authenticate_user(uuid,text)',
        'private.check_contact_company()',
        'private.claim_idempotency_key(text,text,text,text)', 'private.purge_expired_data()',
        'private.cron_field_value(text,text,integer,integer,text[])',
        'private.cron_field_values(text,text,integer,integer,text[])',
        'private.cron_fields(text)', 'private.cron_matches(text,timestamp without time zone)',
        'private.cron_expression_error(text)', 'private.cron_timezone_error(text)',
        'private.jobs_enqueued()', 'private.claim_jobs(text[],integer,integer,integer[])',
        'private.sweep_expired_leases()',
        'private.hold_lease(bigint,uuid,integer)',
        'private.reschedule_job(bigint,uuid,timestamp with time zone,boolean)',
        'private.finish_job(bigint,uuid,jsonb,jsonb)', 'private.tick_workers(boolean)',
        'private.retry_job(bigint,uuid,timestamp with time zone,jsonb,boolean)',
        'private.queue_waited_job(bigint,uuid,text,text,jsonb)',
        'private.lock_workflow_job(text)',
        'private.start_workflow_instance(text,jsonb,jsonb,integer)',
        'private.queue_workflow_instance()', 'private.workflow_instance_finished()',
        'private.start_event_workflows()', 'private.start_cron_workflows(timestamp with time zone)'])$$,
  array['private.new_id(text)', 'private.request_org_id()', 'private.request_environment()',
        'private.is_org_admin()',
        'private.cron_field_value(text,text,integer,integer,text[])',
        'private.cron_field_values(text,text,integer,integer,text[])',
        'private.cron_fields(text)', 'private.cron_matches(text,timestamp without time zone)',
        'private.cron_expression_error(text)', 'private.cron_timezone_error(text)',
        'private.hold_lease(bigint,uuid,integer)',
        'private.reschedule_job(bigint,uuid,timestamp with time zone,boolean)',
        'private.finish_job(bigint,uuid,jsonb,jsonb)', 'private.lock_workflow_job(text)',
        'private.retry_job(bigint,uuid,timestamp with time zone,jsonb,boolean)',
        'private.queue_waited_job(bigint,uuid,text,text,jsonb)',
        'private.start_workflow_instance(text,jsonb,jsonb,integer)'],
  'authenticated can execute exactly the granted functions of private (of these migrations)'
);
select is_empty(
  $$select p.oid::regprocedure::text from pg_proc p
    where p.pronamespace = 'private'::regnamespace
      and (p.proacl is null
           or exists (select from aclexplode(p.proacl) a
                      where a.grantee = 0 and a.privilege_type = 'EXECUTE'))$$,
  'no function in private is executable by PUBLIC (the default a CREATE FUNCTION grants)'
);
select ok(
  has_function_privilege('service_role', 'private.claim_jobs(text[],integer,integer,integer[])',
                         'execute')
  and has_function_privilege('service_role', 'private.start_cron_workflows(timestamptz)', 'execute')
  and has_function_privilege('service_role', 'private.finish_job(bigint,uuid,jsonb,jsonb)',
                             'execute'),
  'service_role can execute claim_jobs, start_cron_workflows and finish_job'
);

-- =======================================================================================
-- 6. Event-triggered workflows
-- =======================================================================================
insert into public.workflows (id, org_id, environment, name, status, trigger_type,
                              trigger_events, concurrency)
values
  ('wf_t11_event', 'org_t11_a', 'live', 'On contact', 'active', 'event',
   '{contact.created}', 'parallel'),
  ('wf_t11_event_off', 'org_t11_a', 'live', 'On contact (off)', 'inactive', 'event',
   '{contact.created}', 'parallel'),
  ('wf_t11_event_single', 'org_t11_a', 'live', 'On invoice', 'active', 'event',
   '{invoice.paid}', 'single');
insert into public.workflow_versions (workflow_id, version, org_id, environment, steps) values
  ('wf_t11_event', 1, 'org_t11_a', 'live', '[{"id":"s1"},{"id":"s2"}]'),
  ('wf_t11_event_off', 1, 'org_t11_a', 'live', '[{"id":"s1"}]'),
  ('wf_t11_event_single', 1, 'org_t11_a', 'live', '[{"id":"s1"}]');

-- An event written by the API (as org A live, through RLS).
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_t11_a","environment":"live"}';
insert into events (id, type, data) values ('ev_t11_a1', 'contact.created', '{"id":"ct_t11"}');
select results_eq(
  $$select status, total_steps, input, trigger, chain_depth from workflow_instances
    where workflow_id = 'wf_t11_event'$$,
  $$values ('running', 2,
            '{"event":"contact.created","event_id":"ev_t11_a1","data":{"id":"ct_t11"}}'::jsonb,
            '{"type":"event","event":"contact.created","event_id":"ev_t11_a1"}'::jsonb, 1)$$,
  'a contact.created event of org A live starts one instance with the event as input'
);
reset role;
select is_empty(
  $$select 1 from public.workflow_instances where workflow_id = 'wf_t11_event_off'$$,
  'an inactive event workflow is not started'
);
select is(
  (select count(*)::int from private.jobs j join public.workflow_instances i on i.id = j.ref
   where i.workflow_id = 'wf_t11_event'),
  1,
  'the event-started instance is queued'
);

insert into public.events (id, org_id, environment, type, data) values
  ('ev_t11_b', 'org_t11_b', 'live', 'contact.created', '{}'),
  ('ev_t11_a_test', 'org_t11_a', 'test', 'contact.created', '{}'),
  ('ev_t11_a_other', 'org_t11_a', 'live', 'contact.updated', '{}');
select is(
  (select count(*)::int from public.workflow_instances where workflow_id = 'wf_t11_event'),
  1,
  'events of org B, of org A''s sandbox or of another type start nothing'
);

insert into public.events (id, org_id, environment, type, data, chain_depth) values
  ('ev_t11_depth4', 'org_t11_a', 'live', 'contact.created', '{}', 4);
select results_eq(
  $$select chain_depth from public.workflow_instances
    where workflow_id = 'wf_t11_event' and input ->> 'event_id' = 'ev_t11_depth4'$$,
  array[5],
  'an event of chain depth 4 starts an instance of chain depth 5'
);
insert into public.events (id, org_id, environment, type, data, chain_depth) values
  ('ev_t11_depth5', 'org_t11_a', 'live', 'contact.created', '{}', 5);
select is_empty(
  $$select 1 from public.workflow_instances
    where workflow_id = 'wf_t11_event' and input ->> 'event_id' = 'ev_t11_depth5'$$,
  'an event of chain depth 5 starts nothing (loop cut-off)'
);

set local bivelio.chain_depth = '2';
insert into public.events (id, org_id, environment, type, data) values
  ('ev_t11_setting', 'org_t11_a', 'live', 'contact.created', '{}');
set local bivelio.chain_depth = '';
select results_eq(
  $$select e.chain_depth, i.chain_depth from public.events e
    join public.workflow_instances i on i.input ->> 'event_id' = e.id
    where e.id = 'ev_t11_setting'$$,
  $$values (2, 3)$$,
  'with bivelio.chain_depth = 2 an event gets chain depth 2 and its instance 3'
);
insert into public.events (id, org_id, environment, type, data) values
  ('ev_t11_nodepth', 'org_t11_a', 'live', 'contact.updated', '{}');
select is((select chain_depth from public.events where id = 'ev_t11_nodepth'), 0,
  'without the setting an event has chain depth 0');

insert into public.events (id, org_id, environment, type, data) values
  ('ev_t11_inv1', 'org_t11_a', 'live', 'invoice.paid', '{}');
select lives_ok(
  $$insert into public.events (id, org_id, environment, type, data)
    values ('ev_t11_inv2', 'org_t11_a', 'live', 'invoice.paid', '{}')$$,
  'an event for a single-concurrency workflow that is still running is written anyway'
);
select results_eq(
  $$select input ->> 'event_id' from public.workflow_instances
    where workflow_id = 'wf_t11_event_single'$$,
  array['ev_t11_inv1'],
  '... and starts no second instance'
);

-- =======================================================================================
-- 7. Cron-triggered workflows
-- =======================================================================================
insert into public.workflows (id, org_id, environment, name, trigger_type, cron_expression,
                              timezone)
values ('wf_t11_cron', 'org_t11_a', 'live', 'Mondays 9:30', 'cron', '30 9 * * 1',
        'Europe/Madrid');
insert into public.workflow_versions (workflow_id, version, org_id, environment, steps) values
  ('wf_t11_cron', 1, 'org_t11_a', 'live', '[{"id":"s1"}]');

-- 2026-11-23 is a Monday; 08:30 UTC is 09:30 in Madrid (CET).
select cmp_ok(private.start_cron_workflows('2026-11-23 08:30:00+00'), '>=', 1,
  'start_cron_workflows at Monday 09:30 Madrid starts at least the test workflow');
select results_eq(
  $$select count(*)::int, min(trigger ->> 'type'), min(input ->> 'scheduled_for'),
           min((trigger ->> 'scheduled_for')::timestamptz) = '2026-11-23 08:30:00+00'
    from public.workflow_instances where workflow_id = 'wf_t11_cron'$$,
  $$values (1, 'cron', '2026-11-23T08:30:00Z', true)$$,
  'one cron instance of the workflow, for that minute'
);
select is((select last_cron_at from public.workflows where id = 'wf_t11_cron'),
  '2026-11-23 08:30:00+00'::timestamptz, 'last_cron_at is the minute that fired');
select lives_ok($$select private.start_cron_workflows('2026-11-23 08:30:45+00')$$,
  'start_cron_workflows runs again within the same minute');
select lives_ok($$select private.start_cron_workflows('2026-11-23 08:31:00+00')$$,
  'and the next minute');
select is(
  (select count(*)::int from public.workflow_instances where workflow_id = 'wf_t11_cron'),
  1,
  'neither the same minute again nor 09:31 starts another instance'
);
select lives_ok($$select private.start_cron_workflows('2026-11-30 08:30:00+00')$$,
  'start_cron_workflows the following Monday');
select is(
  (select count(*)::int from public.workflow_instances where workflow_id = 'wf_t11_cron'),
  2,
  'the following Monday at 09:30 Madrid starts the next instance'
);
select results_eq(
  $$select jobname::text collate "default", schedule, command from cron.job
    where jobname in ('bivelio-start-cron-workflows', 'bivelio-tick-workers',
                      'bivelio-sweep-expired-leases') order by jobname$$,
  $$values ('bivelio-start-cron-workflows'::text, '* * * * *'::text,
            'select private.start_cron_workflows()'::text),
           ('bivelio-sweep-expired-leases', '* * * * *', 'select private.sweep_expired_leases()'),
           ('bivelio-tick-workers', '* * * * *', 'select private.tick_workers()')$$,
  'pg_cron starts cron workflows, sweeps expired leases and ticks the workers every minute'
);

-- Expired leases: the sweep voids them (a held one is left alone).
insert into private.jobs (kind, ref, org_id, environment, available_at, lease_token)
values ('webhook', 'whd_t11_expired', 'org_t11_a', 'live', now() - interval '1 second',
        gen_random_uuid()),
       ('webhook', 'whd_t11_held', 'org_t11_a', 'live', now() + interval '1 minute',
        gen_random_uuid());
select ok(private.sweep_expired_leases() >= 1, 'sweep_expired_leases reports what it swept');
select results_eq(
  $$select ref, lease_token is null from private.jobs
    where ref in ('whd_t11_expired', 'whd_t11_held') order by ref$$,
  $$values ('whd_t11_expired'::text, true), ('whd_t11_held', false)$$,
  'an expired lease is voided; a lease still running is kept'
);
delete from private.jobs where ref in ('whd_t11_expired', 'whd_t11_held');

-- =======================================================================================
-- 8. Waking the workers through pg_net (a fake net.http_post, local to this transaction)
-- =======================================================================================
select is(private.tick_workers(), false, 'tick_workers does nothing without a worker_url');

insert into private.settings values
  ('worker_url', 'https://project.example/functions/v1/worker'),
  ('worker_secret', 't11-secret');
select is(private.tick_workers(), false,
  'tick_workers does nothing while pg_net is not installed');

create schema net;
create table net.t11_calls (
  url text, body jsonb, params jsonb, headers jsonb, timeout_milliseconds int
);
-- A look-alike without pg_net's params argument is not taken for pg_net.
create function net.http_post(url text, body jsonb, headers jsonb,
                              timeout_milliseconds integer) returns bigint
language sql as $$ insert into net.t11_calls values (url, body, null, headers,
                                                     timeout_milliseconds) returning 1::bigint $$;
select is(private.tick_workers(), false,
  'a net.http_post without pg_net''s signature is not called');
drop function net.http_post(text, jsonb, jsonb, integer);

-- pg_net's signature (url, body, params, headers, timeout_milliseconds), all but url defaulted.
create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language sql as $$
  insert into net.t11_calls values (url, body, params, headers, timeout_milliseconds)
  returning 1::bigint
$$;
select ok(private.tick_workers(), 'with pg_net and a worker_url, tick_workers sends a request');
select results_eq(
  'select url, body, params, headers, timeout_milliseconds from net.t11_calls',
  $$values ('https://project.example/functions/v1/worker', '{}'::jsonb, '{}'::jsonb,
            '{"Content-Type":"application/json","Authorization":"Bearer t11-secret"}'::jsonb,
            5000)$$,
  'it POSTs {} to the worker URL with the secret as bearer token (named arguments)'
);

delete from net.t11_calls;
select ok(private.tick_workers(false), 'a wake-up on enqueue is sent');
select is(private.tick_workers(false), false, 'a second one within the second is not');
select is((select count(*)::int from net.t11_calls), 1, '... so only one request went out');

update private.worker_wakeups set last_at = clock_timestamp() - interval '2 seconds';
insert into private.jobs (kind, ref, org_id, environment)
  values ('webhook', 'whd_t11_wake', 'org_t11_a', 'live');
select is((select count(*)::int from net.t11_calls), 2,
  'a new job wakes the workers once the second has passed');

-- =======================================================================================
-- 9. Sandbox workflows and runs are purged after 24 hours
-- =======================================================================================
insert into public.workflows (id, org_id, environment, name, created_at) values
  ('wf_t11_sb_old', 'org_t11_a', 'test', 'Old sandbox', now() - interval '25 hours'),
  ('wf_t11_sb_busy', 'org_t11_a', 'test', 'Old sandbox, recent run', now() - interval '25 hours'),
  ('wf_t11_live_old', 'org_t11_a', 'live', 'Old live', now() - interval '400 days');
insert into public.workflow_versions (workflow_id, version, org_id, environment, steps) values
  ('wf_t11_sb_old', 1, 'org_t11_a', 'test', '[{"id":"s1"}]'),
  ('wf_t11_sb_busy', 1, 'org_t11_a', 'test', '[{"id":"s1"}]'),
  ('wf_t11_live_old', 1, 'org_t11_a', 'live', '[{"id":"s1"}]');
insert into public.workflow_instances (id, org_id, environment, workflow_id, workflow_version,
                                       status, total_steps, created_at)
values
  ('wfi_t11_sb_old', 'org_t11_a', 'test', 'wf_t11_sb_old', 1, 'completed', 1,
   now() - interval '25 hours'),
  ('wfi_t11_sb_busy_old', 'org_t11_a', 'test', 'wf_t11_sb_busy', 1, 'completed', 1,
   now() - interval '25 hours'),
  ('wfi_t11_sb_busy_new', 'org_t11_a', 'test', 'wf_t11_sb_busy', 1, 'completed', 1,
   now() - interval '1 hour'),
  ('wfi_t11_live_old', 'org_t11_a', 'live', 'wf_t11_live_old', 1, 'completed', 1,
   now() - interval '400 days');
insert into public.workflow_step_runs (instance_id, step_id, position, type, org_id, environment,
                                       status)
values ('wfi_t11_sb_old', 's1', 1, 'log', 'org_t11_a', 'test', 'completed');

select lives_ok('select private.purge_expired_data()', 'purge_expired_data runs');
select results_eq(
  $$select id from public.workflow_instances
    where id in ('wfi_t11_sb_old', 'wfi_t11_sb_busy_old', 'wfi_t11_sb_busy_new',
                 'wfi_t11_live_old', 'wfi_t11_a_test')
    order by id$$,
  array['wfi_t11_a_test', 'wfi_t11_live_old', 'wfi_t11_sb_busy_new'],
  'sandbox instances older than 24 hours are purged; recent and live ones are kept'
);
select results_eq(
  $$select id from public.workflows
    where id in ('wf_t11_sb_old', 'wf_t11_sb_busy', 'wf_t11_live_old', 'wf_t11_a_test')
    order by id$$,
  array['wf_t11_a_test', 'wf_t11_live_old', 'wf_t11_sb_busy'],
  'old sandbox workflows are purged unless a recent run still refers to them; live ones are kept'
);
select is_empty(
  $$select 1 from public.workflow_versions where workflow_id = 'wf_t11_sb_old'
    union all select 1 from public.workflow_step_runs where instance_id = 'wfi_t11_sb_old'$$,
  'a purged workflow''s versions and a purged instance''s step runs go with them'
);

select * from finish();
rollback;
