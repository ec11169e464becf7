-- Job inserts notify with the kinds they queued (`webhook`, `workflow,webhook`), so a worker
-- claims only for kinds that may have due jobs instead of on every wake-up: under a steady
-- webhook load most claims came back empty or with one job, at ~1.4 ms of the database's
-- time each (see shared/platform/worker.ts, "What may be due"). An empty payload (the
-- lease sweep, a waiter woken by finish_job) still means "any kind".
create or replace function private.jobs_enqueued() returns trigger
language plpgsql
as $$
declare
  queued text;
begin
  select pg_catalog.string_agg(distinct kind, ',' order by kind) into queued from new_jobs;
  if queued is not null then
    perform pg_catalog.pg_notify('bivelio_jobs', queued);
    if exists (select from private.settings where name operator(pg_catalog.=) 'worker_url') then
      perform private.tick_workers(false);
    end if;
  end if;
  return null;
end
$$;
