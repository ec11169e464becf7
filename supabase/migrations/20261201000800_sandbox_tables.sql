-- Sandbox data is deleted 24 hours after it was made (the spec's sandbox rule). Which tables
-- hold sandbox rows is now data, not code: a group's migration registers its tables here,
-- instead of re-creating private.purge_expired_data() with a copy of every earlier
-- statement. A registered table has `environment` and `created_at` columns.
--
--   insert into private.sandbox_tables (table_name, purge_order)
--   values ('public.invoices', 50);

create table private.sandbox_tables (
  table_name regclass primary key,
  -- Lower first: rows that others point to without a cascade go after those others.
  purge_order int not null default 100,
  -- A further condition a row must meet (SQL over the row, aliased `t`), or null.
  extra_condition text
);
alter table private.sandbox_tables enable row level security;

insert into private.sandbox_tables (table_name, purge_order, extra_condition) values
  ('public.events', 10, null),
  ('public.workflow_instances', 20, null),
  -- A workflow still referenced by an instance (kept a while longer) stays with it.
  ('public.workflows', 30,
   'not exists (select from public.workflow_instances i where i.workflow_id = t.id)'),
  ('public.contacts', 40, null),
  ('public.webhook_deliveries', 50, null),
  ('public.webhooks', 60, null),
  ('private.receivers', 70, null);

create or replace function private.purge_expired_data() returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  sandbox record;
begin
  delete from private.idempotency_keys where created_at < now() - interval '24 hours';
  delete from private.rate_limit_counters where minute_start < now() - interval '2 minutes';
  for sandbox in select * from private.sandbox_tables order by purge_order, table_name::text loop
    execute format(
      'delete from %s t where t.environment = ''test'' and t.created_at < now() - interval ''24 hours''%s',
      sandbox.table_name, coalesce(' and (' || sandbox.extra_condition || ')', ''));
  end loop;
end
$$;

-- Sandbox receivers now go with the rest; this job keeps the dedup records' 7 days.
create or replace function private.purge_receiver_data() returns void
language sql volatile security definer
set search_path = ''
as $$
  delete from private.received_updates where received_at < now() - interval '7 days';
$$;
