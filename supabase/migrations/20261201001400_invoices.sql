-- Invoices: issued (to a client) and received (from a supplier), with their lines. Row-level
-- security by org_id and environment, like contacts. The code is in shared/invoices/.
--
-- Money is `numeric`, exact: amounts are computed in code with a decimal library (half-up
-- to the currency's minor unit, tax per line; shared/invoices/money.ts) and stored as the
-- decimals computed. The database checks that each total is its subtotal plus its tax.
--
-- Issued invoices are numbered per organization, environment and year of issue_date
-- (INV-2026-043) when they are created (a draft has its number): private.next_invoice_number
-- takes the next value of a counter row in the creating transaction, so concurrent creates
-- queue on that row, a rolled-back create gives its number back (no gaps), and a number is
-- never given twice (the counter only grows; a cancelled invoice keeps its number).

create table public.invoices (
  id text primary key default private.new_id('inv'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  type text not null check (type in ('issued', 'received')),
  -- Issued: ours (INV-<year>-<nnn>). Received: the supplier's, when known.
  number text check (length(number) between 1 and 100),
  status text not null default 'draft'
    check (status in ('draft', 'pending', 'paid', 'overdue', 'cancelled')),
  -- The client (issued) or the supplier (received); its name as it was invoiced is kept, so
  -- the invoice stays whole if the contact is deleted.
  client_id text,
  client_name text not null check (length(client_name) between 1 and 200),
  -- ISO 4217; the API checks the code against its list (shared/invoices/money.ts).
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  issue_date date not null,
  due_date date not null,
  notes text check (length(notes) <= 5000),
  subtotal numeric not null check (subtotal >= 0),
  tax numeric not null check (tax >= 0),
  total numeric not null check (total >= 0),
  -- Bumped by every change to what the PDF shows; the stored PDF is of pdf_revision.
  revision int not null default 1 check (revision >= 1),
  -- Inside the `invoices` bucket, below the environment's folder (shared/platform/storage.ts).
  pdf_path text check (length(pdf_path) between 1 and 1000),
  pdf_revision int,
  -- The extraction a received invoice was made from (documents/extract).
  extraction_id text,
  sent_at timestamptz,
  paid_at timestamptz,
  cancelled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, environment, id),
  foreign key (org_id, environment, client_id)
    references public.contacts (org_id, environment, id) on delete set null (client_id),
  check (total = subtotal + tax),
  check (due_date >= issue_date),
  check (type = 'received' or number is not null),
  check ((status = 'paid') = (paid_at is not null)),
  check ((status = 'cancelled') = (cancelled_at is not null)),
  check ((pdf_path is null) = (pdf_revision is null))
);
-- Belt and braces for the counter: an issued number exists once per org and environment.
create unique index invoices_number_idx
  on public.invoices (org_id, environment, number) where type = 'issued';
create index invoices_list_idx
  on public.invoices (org_id, environment, issue_date desc, created_at desc, id desc);
create index invoices_client_idx on public.invoices (client_id) where client_id is not null;
create index invoices_pending_due_idx on public.invoices (due_date) where status = 'pending';

create table public.invoice_lines (
  invoice_id text not null,
  -- From 0, in the order given.
  position int not null check (position >= 0),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  description text not null check (length(description) between 1 and 500),
  quantity numeric not null check (quantity > 0),
  unit_price numeric not null check (unit_price >= 0),
  -- Percent: 21 for 21 %.
  tax_rate numeric not null check (tax_rate between 0 and 100),
  subtotal numeric not null check (subtotal >= 0),
  tax numeric not null check (tax >= 0),
  total numeric not null check (total >= 0),
  primary key (invoice_id, position),
  foreign key (org_id, environment, invoice_id)
    references public.invoices (org_id, environment, id) on delete cascade,
  check (total = subtotal + tax)
);

-- A number, once given, stays: never changed, never cleared (a cancelled invoice keeps it).
create function private.keep_invoice_number() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.number is not null and new.number is distinct from old.number then
    raise exception 'invoice % keeps its number %', old.id, old.number using errcode = '23514';
  end if;
  if new.type is distinct from old.type then
    raise exception 'invoice % keeps its type', old.id using errcode = '23514';
  end if;
  return new;
end
$$;
create trigger invoices_keep_number
  before update of number, type on public.invoices
  for each row execute function private.keep_invoice_number();

alter table public.invoices enable row level security;
alter table public.invoice_lines enable row level security;
revoke all on public.invoices, public.invoice_lines from anon, authenticated;
grant select, insert, update, delete on public.invoices, public.invoice_lines to authenticated;
create policy invoices_own_org_env on public.invoices for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));
create policy invoice_lines_own_org_env on public.invoice_lines for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- ---------------------------------------------------------------------------------------
-- Numbering
-- ---------------------------------------------------------------------------------------

create table private.invoice_counters (
  org_id text not null references public.organizations (id) on delete cascade,
  environment text not null check (environment in ('live', 'test')),
  year int not null check (year between 1 and 9999),
  last_number int not null check (last_number >= 1),
  primary key (org_id, environment, year)
);
alter table private.invoice_counters enable row level security;
revoke all on private.invoice_counters from anon, authenticated;

-- The next issued invoice number of the caller's organization and environment for `p_year`:
-- INV-2026-001 … INV-2026-999, INV-2026-1000 … The counter row stays locked until the
-- calling transaction ends, so concurrent creates are numbered one after another, and a
-- create that rolls back takes its increment with it.
create function private.next_invoice_number(p_year int) returns text
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_org text := private.request_org_id();
  v_env text := private.request_environment();
  v_next int;
begin
  if v_org is null or v_env is null then
    raise exception 'no organization in the request claims' using errcode = '42501';
  end if;
  insert into private.invoice_counters as c (org_id, environment, year, last_number)
  values (v_org, v_env, p_year, 1)
  on conflict (org_id, environment, year) do update set last_number = c.last_number + 1
  returning c.last_number into v_next;
  return format('INV-%s-%s', p_year, lpad(v_next::text, greatest(3, length(v_next::text)), '0'));
end
$$;
revoke execute on function private.next_invoice_number(int) from public;
grant execute on function private.next_invoice_number(int) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Overdue: pending invoices past their due date (the day after due_date, UTC), every hour.
-- ---------------------------------------------------------------------------------------

create function private.mark_overdue_invoices(
  p_today date default (now() at time zone 'UTC')::date
) returns int
language sql volatile
set search_path = ''
as $$
  with marked as (
    update public.invoices
    set status = 'overdue', updated_at = now()
    where status = 'pending' and due_date < p_today
    returning 1
  )
  select count(*)::int from marked;
$$;
revoke execute on function private.mark_overdue_invoices(date) from public;

select cron.schedule('bivelio-mark-overdue-invoices', '7 * * * *',
  'select private.mark_overdue_invoices()');

-- Sandbox invoices go after 24 hours with the rest (their lines by cascade; their PDFs are
-- under test/ and go by purgeExpiredSandboxFiles). The counters stay: a number is never given
-- twice, in the sandbox either.
insert into private.sandbox_tables (table_name, purge_order) values ('public.invoices', 38);
