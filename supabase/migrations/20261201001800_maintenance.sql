-- Periodic work that needs the API's own clients and so cannot run inside pg_cron (the
-- sandbox's stored files are removed through the Storage API). Workers run it: the first
-- worker to claim a task's turn runs it, once per period however many workers there are
-- (shared/platform/maintenance.ts).

create table private.maintenance_runs (
  name text primary key,
  last_run_at timestamptz not null
);
alter table private.maintenance_runs enable row level security;

-- True for the one caller that takes task p_name's turn: when it never ran, or last ran
-- p_every or longer ago.
create function private.claim_maintenance(p_name text, p_every interval) returns boolean
language sql volatile
set search_path = ''
as $$
  insert into private.maintenance_runs as m (name, last_run_at) values (p_name, now())
  on conflict (name) do update set last_run_at = now()
    where m.last_run_at <= now() - p_every
  returning true
$$;
revoke execute on function private.claim_maintenance(text, interval) from public;
grant execute on function private.claim_maintenance(text, interval) to service_role;
