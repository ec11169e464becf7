-- AI generations (issue 13's "Generation"): a workflow definition or a form definition made
-- from a prompt by Gemini. One row per request: its credits are debited in the same
-- transaction that inserts it `running`, and refunded if the model fails or its answer does
-- not pass the checks a definition must pass.

create table public.generations (
  id text primary key default private.new_id('gen'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  kind text not null check (kind in ('workflow', 'form')),
  prompt text not null check (length(prompt) between 1 and 8000),
  status text not null default 'running' check (status in ('running', 'completed', 'failed')),
  output jsonb,
  error jsonb,
  credits int not null default 0,
  tokens_used int,
  created_at timestamptz not null default now(),
  completed_at timestamptz
);
create index generations_org_idx on public.generations (org_id, environment, created_at desc);
alter table public.generations enable row level security;

-- Not the default "all": TRUNCATE ignores row-level security.
revoke all on public.generations from anon, authenticated;
grant select, insert, update on public.generations to authenticated;
create policy generations_own_org_env on public.generations for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

insert into private.sandbox_tables (table_name, purge_order) values ('public.generations', 80);
