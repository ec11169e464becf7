-- Cases (files): the small group the spec's events case.created / case.updated imply. A case
-- has a title, a status, a contact, an assignee (a member of the organization), tags, and
-- links to documents, invoices and messages of the same organization and environment.

create table public.cases (
  id text primary key default private.new_id('case'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  title text not null check (length(title) between 1 and 200),
  description text not null default '' check (length(description) <= 5000),
  status text not null default 'open'
    check (status in ('open', 'in_progress', 'waiting', 'closed')),
  contact_id text references public.contacts (id) on delete set null,
  assignee_id uuid,
  tags text[] not null default '{}' check (cardinality(tags) <= 50),
  closed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((status = 'closed') = (closed_at is not null))
);
create index cases_list_idx on public.cases (org_id, environment, created_at desc, id desc);

-- Links to other records, by kind. Not foreign keys: each kind's table is its own group's,
-- and a linked record deleted later leaves a link the API reports as gone.
create table public.case_links (
  case_id text not null references public.cases (id) on delete cascade,
  org_id text not null default private.request_org_id(),
  environment text not null default private.request_environment(),
  kind text not null check (kind in ('document', 'invoice', 'message')),
  target_id text not null check (length(target_id) between 1 and 100),
  created_at timestamptz not null default now(),
  primary key (case_id, kind, target_id)
);

alter table public.cases enable row level security;
alter table public.case_links enable row level security;
-- Not the default "all": TRUNCATE ignores row-level security.
revoke all on public.cases, public.case_links from anon, authenticated;
grant select, insert, update, delete on public.cases, public.case_links to authenticated;
create policy cases_own_org_env on public.cases for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));
create policy case_links_own_org_env on public.case_links for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

insert into private.sandbox_tables (table_name, purge_order) values ('public.cases', 35);
