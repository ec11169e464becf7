-- The AI groups' tables in the database (migrations 20261201001000 agents, 001100 documents,
-- 001200 generations): row-level security by organization and environment and the API
-- role's grants, the foreign keys that keep an execution or a run within one organization
-- and environment, the check constraints, and the pg_cron sweeps that settle work a dead
-- process left running (failed, refunded, announced).
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(54);

\ir _helpers.psql
\ir _tenant_isolation.psql

-- Fixtures (as the superuser, which bypasses RLS): for each table a row of org A live, of
-- org A's sandbox and of org B live.
insert into public.organizations (id, name) values
  ('org_ai_a', 'AI Org A'),
  ('org_ai_b', 'AI Org B');
insert into public.agents (id, org_id, environment, name, output_schema) values
  ('ag_a_live', 'org_ai_a', 'live', 'A live', '{}'),
  ('ag_a_test', 'org_ai_a', 'test', 'A test', '{}'),
  ('ag_b_live', 'org_ai_b', 'live', 'B live', '{}');
insert into public.agent_executions (id, org_id, environment, agent_id, model, input, status,
    completed_at) values
  ('age_a_live', 'org_ai_a', 'live', 'ag_a_live', 'm', '{}', 'completed', now()),
  ('age_a_test', 'org_ai_a', 'test', 'ag_a_test', 'm', '{}', 'completed', now()),
  ('age_b_live', 'org_ai_b', 'live', 'ag_b_live', 'm', '{}', 'completed', now());
insert into public.documents (id, org_id, environment, filename, storage_path, size_bytes,
    mime_type, status) values
  ('doc_a_live', 'org_ai_a', 'live', 'a.pdf', 'org_ai_a/doc_a_live/a.pdf', 10, 'application/pdf', 'stored'),
  ('doc_a_test', 'org_ai_a', 'test', 'a.pdf', 'org_ai_a/doc_a_test/a.pdf', 10, 'application/pdf', 'stored'),
  ('doc_b_live', 'org_ai_b', 'live', 'b.pdf', 'org_ai_b/doc_b_live/b.pdf', 10, 'application/pdf', 'stored');
insert into public.document_extractions (id, org_id, environment, operation, document_id,
    model, status, completed_at) values
  ('ext_a_live', 'org_ai_a', 'live', 'extract', 'doc_a_live', 'm', 'completed', now()),
  ('ext_a_test', 'org_ai_a', 'test', 'extract', 'doc_a_test', 'm', 'completed', now()),
  ('ext_b_live', 'org_ai_b', 'live', 'extract', 'doc_b_live', 'm', 'completed', now());
insert into public.generations (id, org_id, environment, kind, prompt) values
  ('gen_a_live', 'org_ai_a', 'live', 'workflow', 'p'),
  ('gen_a_test', 'org_ai_a', 'test', 'workflow', 'p'),
  ('gen_b_live', 'org_ai_b', 'live', 'form', 'p');

-- ---------------------------------------------------------------------------------------
-- Grants: the API role reads, inserts and updates; it deletes documents only; anon nothing.
-- ---------------------------------------------------------------------------------------
select table_privs_are('public', 'agents', 'authenticated', array['SELECT', 'INSERT', 'UPDATE'],
  'authenticated may select, insert and update agents (no delete, no truncate)');
select table_privs_are('public', 'agent_executions', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE'],
  'authenticated may select, insert and update agent_executions');
select table_privs_are('public', 'documents', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'authenticated may select, insert, update and delete documents');
select table_privs_are('public', 'document_extractions', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE'],
  'authenticated may select, insert and update document_extractions (a run outlives its document)');
select table_privs_are('public', 'generations', 'authenticated',
  array['SELECT', 'INSERT', 'UPDATE'],
  'authenticated may select, insert and update generations');
select is_empty(
  $$select t from unnest(array['public.agents', 'public.agent_executions', 'public.documents',
      'public.document_extractions', 'public.generations']) t
    where has_table_privilege('anon', t, 'select, insert, update, delete, truncate, references, trigger')$$,
  'anon has no privilege on the AI tables'
);

-- ---------------------------------------------------------------------------------------
-- Row-level security as org A, live
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_ai_a","environment":"live"}';

select pg_temp.tenant_isolation('public.agents', 'id', 'ag_a_live', 'ag_a_test', 'ag_b_live',
  $$name = 'renamed'$$, false);
select pg_temp.tenant_isolation('public.agent_executions', 'id', 'age_a_live', 'age_a_test',
  'age_b_live', 'output_tokens = 7', false);
select pg_temp.tenant_isolation('public.documents', 'id', 'doc_a_live', 'doc_a_test',
  'doc_b_live', $$tags = '{x}'$$, true);
select pg_temp.tenant_isolation('public.document_extractions', 'id', 'ext_a_live', 'ext_a_test',
  'ext_b_live', 'confidence = 0.5', false);
select pg_temp.tenant_isolation('public.generations', 'id', 'gen_a_live', 'gen_a_test',
  'gen_b_live', 'tokens_used = 9', false);

select throws_ok(
  $$insert into agents (org_id, name, output_schema) values ('org_ai_b', 'x', '{}')$$,
  '42501', null, 'an agent cannot be written into another organization');
select throws_ok(
  $$insert into agents (environment, name, output_schema) values ('test', 'x', '{}')$$,
  '42501', null, 'a live caller cannot write a sandbox agent');
select throws_ok(
  $$insert into agent_executions (org_id, agent_id, model, input)
    values ('org_ai_b', 'ag_b_live', 'm', '{}')$$,
  '42501', null, 'an execution cannot be written into another organization');
select throws_ok(
  $$insert into documents (environment, filename, storage_path, size_bytes, mime_type)
    values ('test', 'x.pdf', 'x/y/x.pdf', 1, 'application/pdf')$$,
  '42501', null, 'a live caller cannot write a sandbox document');
select throws_ok(
  $$insert into document_extractions (id, org_id, operation, model)
    values ('ext_x', 'org_ai_b', 'extract', 'm')$$,
  '42501', null, 'an extraction cannot be written into another organization');
select throws_ok(
  $$insert into generations (environment, kind, prompt) values ('test', 'form', 'p')$$,
  '42501', null, 'a live caller cannot write a sandbox generation');
select throws_ok(
  $$update agents set org_id = 'org_ai_b' where id = 'ag_a_live'$$,
  '42501', null, 'an agent cannot be moved to another organization');

-- ---------------------------------------------------------------------------------------
-- Foreign keys within one organization and environment, and check constraints
-- ---------------------------------------------------------------------------------------
select throws_ok(
  $$insert into agent_executions (agent_id, model, input) values ('ag_b_live', 'm', '{}')$$,
  '23503', null, 'an execution cannot be of another organization''s agent');
select throws_ok(
  $$insert into agent_executions (agent_id, model, input) values ('ag_a_test', 'm', '{}')$$,
  '23503', null, 'a live execution cannot be of a sandbox agent');
select throws_ok(
  $$insert into document_extractions (id, operation, document_id, model)
    values ('ext_x', 'extract', 'doc_b_live', 'm')$$,
  '23503', null, 'a run cannot be of another organization''s document');
select throws_ok(
  $$insert into agent_executions (agent_id, model, input, status)
    values ('ag_a_live', 'm', '{}', 'done')$$,
  '23514', null, 'an execution''s status is running, completed or failed');
select throws_ok(
  $$insert into agent_executions (agent_id, model, input, status)
    values ('ag_a_live', 'm', '{}', 'completed')$$,
  '23514', null, 'a completed execution has its completion time');
select throws_ok(
  $$insert into agents (name, output_schema, temperature) values ('x', '{}', 2.5)$$,
  '23514', null, 'an agent''s temperature is between 0 and 2');
select throws_ok(
  $$insert into document_extractions (id, operation, model) values ('cls_x', 'extract', 'm')$$,
  '23514', null, 'an extraction''s id is ext_…, a classification''s is not');
select throws_ok(
  $$insert into documents (filename, storage_path, size_bytes, mime_type)
    values ('x.pdf', 'org_ai_a/doc_x/x.pdf', 0, 'application/pdf')$$,
  '23514', null, 'a document is never empty');
select throws_ok(
  $$insert into generations (kind, prompt) values ('poem', 'p')$$,
  '23514', null, 'a generation makes a workflow or a form');
select lives_ok(
  $$insert into agent_executions (agent_id, model, input, request_key)
    values ('ag_a_live', 'm', '{}', 'wfi_1.step_1')$$,
  'an execution records its workflow step''s key');
select throws_ok(
  $$insert into agent_executions (agent_id, model, input, request_key)
    values ('ag_a_live', 'm', '{}', 'wfi_1.step_1')$$,
  '23505', null, 'a workflow step has one execution (a retried step finds it, never pays twice)');
select lives_ok(
  $$delete from documents where id = 'doc_a_live'$$, 'org A deletes its document');
select results_eq(
  $$select id, document_id from document_extractions where id = 'ext_a_live'$$,
  $$values ('ext_a_live'::text, null::text)$$,
  'the document''s run is kept, without its document');

-- ---------------------------------------------------------------------------------------
-- Sweeps of work left running (pg_cron, every minute)
-- ---------------------------------------------------------------------------------------
-- Debits for an abandoned execution and an abandoned extraction, as the API would take them.
select ok((select covered from private.debit_credits('agent_invoke', 3, 'age_old')),
  'the abandoned execution''s debit');
select ok((select covered from private.debit_credits('ocr_extraction', 2, 'ext_old')),
  'the abandoned run''s debit');
reset role;
insert into public.agent_executions (id, org_id, environment, agent_id, model, input, credits,
    created_at) values
  ('age_old', 'org_ai_a', 'live', 'ag_a_live', 'm', '{}', 3, now() - interval '11 minutes'),
  ('age_new', 'org_ai_a', 'live', 'ag_a_live', 'm', '{}', 3, now() - interval '2 minutes');
insert into public.document_extractions (id, org_id, environment, operation, model, credits,
    created_at) values
  ('ext_old', 'org_ai_a', 'live', 'extract', 'm', 2, now() - interval '11 minutes'),
  ('ext_new', 'org_ai_a', 'live', 'extract', 'm', 2, now() - interval '2 minutes');
insert into public.documents (id, org_id, environment, filename, storage_path, size_bytes,
    mime_type, created_at) values
  ('doc_old_kept', 'org_ai_a', 'live', 'k.pdf', 'org_ai_a/doc_old_kept/k.pdf', 10,
   'application/pdf', now() - interval '11 minutes'),
  ('doc_old_lost', 'org_ai_a', 'live', 'l.pdf', 'org_ai_a/doc_old_lost/l.pdf', 10,
   'application/pdf', now() - interval '11 minutes'),
  ('doc_new', 'org_ai_a', 'live', 'n.pdf', 'org_ai_a/doc_new/n.pdf', 10, 'application/pdf',
   now() - interval '2 minutes');
-- Only the first reached Storage before its process died.
insert into storage.objects (bucket_id, name) values
  ('documents', 'live/org_ai_a/doc_old_kept/k.pdf');

select results_eq(
  $$select schedule, command, active from cron.job
    where jobname in ('bivelio-fail-abandoned-agent-executions',
                      'bivelio-finish-abandoned-document-work') order by jobname$$,
  $$values ('* * * * *'::text, 'select private.fail_abandoned_agent_executions()'::text, true),
           ('* * * * *', 'select private.finish_abandoned_document_work()', true)$$,
  'pg_cron runs both sweeps every minute'
);

select ok(private.fail_abandoned_agent_executions() >= 1, 'the agent sweep fails something');
select results_eq(
  $$select id, status, credits, error ->> 'code', completed_at is not null
    from public.agent_executions where id in ('age_old', 'age_new') order by id$$,
  $$values ('age_new'::text, 'running'::text, 3, null::text, false),
           ('age_old', 'failed', 0, 'EXECUTION_ABANDONED', true)$$,
  'an execution running for over 10 minutes is failed with no credits; a recent one is left'
);
select results_eq(
  $$select amount, operation from public.credit_transactions
    where org_id = 'org_ai_a' and reference = 'age_old' order by seq$$,
  $$values (-3, 'agent_invoke'::text), (3, 'refund')$$,
  'the abandoned execution''s credits are refunded'
);
select results_eq(
  $$select data ->> 'status', data ->> 'error' is not null from public.events
    where org_id = 'org_ai_a' and type = 'agent.executed' and data ->> 'execution_id' = 'age_old'$$,
  $$values ('failed'::text, true)$$,
  'agent.executed announces the failure'
);

select ok(private.finish_abandoned_document_work() >= 3,
  'the document sweep settles the run and both pending documents');
select results_eq(
  $$select id, status, credits, error ->> 'code'
    from public.document_extractions where id in ('ext_old', 'ext_new') order by id$$,
  $$values ('ext_new'::text, 'running'::text, 2, null::text),
           ('ext_old', 'failed', 0, 'PROCESSING_ABANDONED')$$,
  'a run running for over 10 minutes is failed with no credits; a recent one is left'
);
select results_eq(
  $$select amount from public.credit_transactions
    where org_id = 'org_ai_a' and reference = 'ext_old' order by seq$$,
  $$values (-2), (2)$$,
  'the abandoned run''s credits are refunded'
);
select is(
  (select count(*)::int from public.events where org_id = 'org_ai_a'
     and type = 'document.processed' and data ->> 'extraction_id' = 'ext_old'
     and data ->> 'status' = 'failed'),
  1, 'document.processed announces the failure');
select results_eq(
  $$select id, status from public.documents
    where id in ('doc_old_kept', 'doc_old_lost', 'doc_new') order by id$$,
  $$values ('doc_new'::text, 'pending'::text), ('doc_old_kept', 'stored')$$,
  'a pending document whose file reached Storage is stored, one whose file did not is gone, a recent one waits'
);

-- ---------------------------------------------------------------------------------------
-- The private functions of these migrations are the superuser's (pg_cron's) only
-- ---------------------------------------------------------------------------------------
select is_empty(
  $$select f, r from unnest(array[
      'private.fail_abandoned_agent_executions(interval)',
      'private.finish_abandoned_document_work(interval)']::regprocedure[]) f,
    unnest(array['anon', 'authenticated', 'service_role']) r
    where has_function_privilege(r, f, 'execute')$$,
  'the sweeps are executable by neither PUBLIC, anon, authenticated nor service_role'
);

select * from finish();
rollback;
