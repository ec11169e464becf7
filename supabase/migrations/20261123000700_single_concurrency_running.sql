-- A workflow switched to concurrency 'single' while instances of its parallel days still
-- run: those instances are not exclusive, so workflow_instances_single_idx does not see
-- them and a second instance could start beside them. start_workflow_instance now refuses
-- that case itself, with the error the index raises (callers already handle it: the API's
-- WORKFLOW_ALREADY_RUNNING, the cron and event triggers skip the start).
--
-- Without a SET clause, like 20261123000500_hot_path_functions left it: every name is
-- schema-qualified. The grants stay (create or replace keeps them).

-- Only unfinished instances: what the check reads, small whatever the history.
create index workflow_instances_unfinished_idx on public.workflow_instances (workflow_id)
  where status in ('pending', 'running');

create or replace function private.start_workflow_instance(
  p_workflow_id text, p_input jsonb, p_trigger jsonb, p_chain_depth int default 0
) returns setof public.workflow_instances
language plpgsql volatile  -- not sql: a plpgsql function's plan is cached
as $$
begin
  if exists (
    select from public.workflows w
    where w.id = p_workflow_id and w.status = 'active' and w.concurrency = 'single'
      and exists (select from public.workflow_instances i
                  where i.workflow_id = w.id and i.status in ('pending', 'running'))
  ) then
    raise exception using errcode = 'unique_violation',
      constraint = 'workflow_instances_single_idx',
      message = format('workflow %s runs one instance at a time and one is still running',
                       p_workflow_id);
  end if;
  return query
  insert into public.workflow_instances (org_id, environment, workflow_id, workflow_version,
    exclusive, total_steps, input, trigger, chain_depth)
  select w.org_id, w.environment, w.id, w.version, w.concurrency = 'single',
         jsonb_array_length(v.steps), p_input, p_trigger, p_chain_depth
  from public.workflows w
  join public.workflow_versions v on v.workflow_id = w.id and v.version = w.version
  where w.id = p_workflow_id and w.status = 'active'
  returning *;
end
$$;
