-- AI credits: a balance per organization and an append-only ledger of every change to it.
--
-- Other groups spend credits inside the transaction that records their operation (an
-- agent execution, a document extraction), through private.debit_credits() and
-- private.refund_credits(), which act for the caller's organization and environment read
-- from the request's claims. The API role can read the ledger (RLS by org and
-- environment) and its balance, and change neither directly.
--
-- Sandbox (environment 'test'): a debit writes a simulated ledger row (balance_after null)
-- and never touches the balance; it is never refused.

-- ---------------------------------------------------------------------------------------
-- Monthly allowance per plan (beside the plan's rate limits)
-- ---------------------------------------------------------------------------------------

alter table private.plan_limits
  add column monthly_credit_allowance int not null default 0
    check (monthly_credit_allowance >= 0);
update private.plan_limits set monthly_credit_allowance = case plan
  when 'starter' then 500
  when 'pro' then 5000
  when 'enterprise' then 50000
  else 0 end;

-- The first moment of the calendar month (UTC) after `at`: when allowances are restored.
create function private.next_credit_reset(at timestamptz) returns timestamptz
language sql immutable
set search_path = ''
as $$ select (date_trunc('month', at at time zone 'UTC') + interval '1 month') at time zone 'UTC' $$;
revoke execute on function private.next_credit_reset(timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- Balances
-- ---------------------------------------------------------------------------------------

create table public.credit_balances (
  org_id text primary key references public.organizations (id) on delete cascade,
  -- The last line of defence: no debit, however concurrent, takes it below zero.
  balance int not null check (balance >= 0),
  -- The plan's allowance, kept in step with the plan by the trigger below.
  monthly_allowance int not null check (monthly_allowance >= 0),
  resets_at timestamptz not null,
  updated_at timestamptz not null default now()
);
create index credit_balances_resets_at_idx on public.credit_balances (resets_at);

alter table public.credit_balances enable row level security;
revoke all on public.credit_balances from anon, authenticated;
grant select on public.credit_balances to authenticated;
-- One balance per organization, shared by live and sandbox callers (sandbox reads the real
-- balance; it never changes it).
create policy credit_balances_own_org on public.credit_balances for select to authenticated
  using (org_id = (select private.request_org_id()));

-- ---------------------------------------------------------------------------------------
-- The ledger (append-only)
-- ---------------------------------------------------------------------------------------

create table public.credit_transactions (
  id text primary key default private.new_id('ctx'),
  -- Insertion order: the newest-first order of the list, stable within one transaction.
  seq bigint generated always as identity unique,
  org_id text not null references public.organizations (id) on delete cascade,
  environment text not null check (environment in ('live', 'test')),
  operation text not null check (operation in (
    'agent_invoke', 'ocr_extraction', 'document_classification', 'workflow_generation',
    'form_generation',                 -- debits (amount < 0)
    'refund', 'monthly_reset', 'grant' -- credits (amount >= 0)
  )),
  amount int not null,
  -- The balance right after this row; null for sandbox rows, which touch no balance.
  balance_after int check (balance_after >= 0),
  -- What the credits were for: the execution, document or request id.
  reference text check (length(reference) between 1 and 200),
  -- A refund names the debit it gives back; unique, so a debit is refunded at most once.
  refund_of text unique,
  simulated boolean generated always as (environment = 'test') stored,
  created_at timestamptz not null default now(),
  unique (org_id, environment, id),
  -- A refund gives back a debit of the same organization and environment (purged with it).
  foreign key (org_id, environment, refund_of)
    references public.credit_transactions (org_id, environment, id) on delete cascade,
  check ((environment = 'test') = (balance_after is null)),
  check (case
    when operation = 'refund' then amount > 0 and refund_of is not null
    when operation in ('monthly_reset', 'grant') then amount >= 0 and refund_of is null
    else amount < 0 and refund_of is null
  end)
);
create index credit_transactions_list_idx
  on public.credit_transactions (org_id, environment, seq desc);
create index credit_transactions_reference_idx
  on public.credit_transactions (org_id, environment, reference) where reference is not null;

alter table public.credit_transactions enable row level security;
revoke all on public.credit_transactions from anon, authenticated;
grant select on public.credit_transactions to authenticated;
create policy credit_transactions_own_org_env on public.credit_transactions
  for select to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()));

-- Append-only for every role, owners included: a ledger row is never rewritten. (Rows go
-- only with their organization, or with the 24-hour sandbox purge.)
create function private.credit_transactions_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'credit_transactions is append-only' using errcode = '42501';
end
$$;
revoke execute on function private.credit_transactions_append_only() from public;
create trigger credit_transactions_no_update
  before update on public.credit_transactions
  for each statement execute function private.credit_transactions_append_only();

insert into private.sandbox_tables (table_name) values ('public.credit_transactions');

-- ---------------------------------------------------------------------------------------
-- Every organization has a balance: a new one starts with its plan's allowance, and a plan
-- change brings the new allowance (restored at the next reset).
-- ---------------------------------------------------------------------------------------

create function private.sync_credit_balance() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  allowance int;
begin
  select p.monthly_credit_allowance into allowance
  from private.plan_limits p where p.plan = new.plan;
  insert into public.credit_balances (org_id, balance, monthly_allowance, resets_at)
    values (new.id, coalesce(allowance, 0), coalesce(allowance, 0),
            private.next_credit_reset(now()))
  on conflict (org_id) do update set monthly_allowance = excluded.monthly_allowance,
                                     updated_at = now();
  return null;
end
$$;
revoke execute on function private.sync_credit_balance() from public;
create trigger organizations_credit_balance
  after insert or update of plan on public.organizations
  for each row execute function private.sync_credit_balance();

-- Organizations that existed before this migration.
insert into public.credit_balances (org_id, balance, monthly_allowance, resets_at)
select o.id, p.monthly_credit_allowance, p.monthly_credit_allowance,
       private.next_credit_reset(now())
from public.organizations o join private.plan_limits p on p.plan = o.plan
on conflict (org_id) do nothing;

-- ---------------------------------------------------------------------------------------
-- Spending and refunding, for the caller's organization and environment (the claims)
-- ---------------------------------------------------------------------------------------

-- Debits `p_amount` credits for `p_operation`. Live: in one statement, the balance is
-- decremented only if it covers the amount, and the ledger row is written with the new
-- balance. Concurrent debits queue on the balance row and each re-checks the balance it
-- finds, so the balance never goes below zero. Not covered: no change, covered = false,
-- `balance` is the current balance. Sandbox: a simulated ledger row, the balance untouched.
create function private.debit_credits(p_operation text, p_amount int, p_reference text)
returns table (covered boolean, balance int, transaction_id text)
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_org text := private.request_org_id();
  v_env text := private.request_environment();
begin
  if v_org is null then
    raise exception 'no organization in the request claims' using errcode = '42501';
  end if;
  if p_operation not in ('agent_invoke', 'ocr_extraction', 'document_classification',
                         'workflow_generation', 'form_generation') then
    raise exception 'operation % is not a debit', p_operation using errcode = '22023';
  end if;
  if p_amount is null or p_amount <= 0 then
    raise exception 'a debit must be a positive number of credits' using errcode = '22023';
  end if;

  if v_env = 'test' then
    covered := true;
    insert into public.credit_transactions (org_id, environment, operation, amount, reference)
      values (v_org, v_env, p_operation, -p_amount, p_reference)
      returning id into transaction_id;
    return next;
    return;
  end if;

  with debited as (
    update public.credit_balances b
    set balance = b.balance - p_amount, updated_at = now()
    where b.org_id = v_org and b.balance >= p_amount
    returning b.balance
  ), entry as (
    insert into public.credit_transactions
      (org_id, environment, operation, amount, balance_after, reference)
    select v_org, v_env, p_operation, -p_amount, d.balance, p_reference from debited d
    returning id, balance_after
  )
  select true, e.balance_after, e.id into covered, balance, transaction_id from entry e;

  if covered is null then
    covered := false;
    select coalesce((select b.balance from public.credit_balances b where b.org_id = v_org), 0)
      into balance;
  end if;
  return next;
end
$$;

-- Gives back every debit of the caller's organization and environment with this reference
-- that has not been refunded yet (a failed Gemini call). Each debit is refunded at most
-- once: its row is locked first, so a concurrent refund waits and then finds the refund
-- (refund_of is also unique). Returns the credits given back (0 when there was nothing to
-- refund) and the balance after (null in sandbox).
create function private.refund_credits(p_reference text)
returns table (refunded int, balance int)
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_org text := private.request_org_id();
  v_env text := private.request_environment();
  debit record;
begin
  if v_org is null then
    raise exception 'no organization in the request claims' using errcode = '42501';
  end if;
  refunded := 0;
  for debit in
    select t.id, -t.amount as credits from public.credit_transactions t
    where t.org_id = v_org and t.environment = v_env and t.reference = p_reference
      and t.amount < 0
    order by t.seq
    for update
  loop
    continue when exists (
      select from public.credit_transactions r where r.refund_of = debit.id
    );
    if v_env = 'live' then
      update public.credit_balances b
      set balance = b.balance + debit.credits, updated_at = now()
      where b.org_id = v_org
      returning b.balance into balance;
    end if;
    insert into public.credit_transactions
      (org_id, environment, operation, amount, balance_after, reference, refund_of)
      values (v_org, v_env, 'refund', debit.credits, balance, p_reference, debit.id);
    refunded := refunded + debit.credits;
  end loop;
  if v_env = 'live' and balance is null then
    select b.balance into balance from public.credit_balances b where b.org_id = v_org;
  end if;
  return next;
end
$$;

revoke execute on function private.debit_credits(text, int, text),
  private.refund_credits(text) from public;
grant execute on function private.debit_credits(text, int, text),
  private.refund_credits(text) to authenticated, service_role;

-- Adds credits to an organization's live balance (support, the demo seed). Not for the API.
create function private.grant_credits(p_org_id text, p_amount int, p_reference text default null)
returns int
language sql volatile
set search_path = ''
as $$
  with granted as (
    update public.credit_balances b
    set balance = b.balance + p_amount, updated_at = now()
    where b.org_id = p_org_id and p_amount > 0
    returning b.balance
  )
  insert into public.credit_transactions
    (org_id, environment, operation, amount, balance_after, reference)
  select p_org_id, 'live', 'grant', p_amount, g.balance, p_reference from granted g
  returning balance_after
$$;
revoke execute on function private.grant_credits(text, int, text) from public;

-- ---------------------------------------------------------------------------------------
-- Monthly allowance (pg_cron)
-- ---------------------------------------------------------------------------------------

-- Restores the allowance of every balance whose reset is due at `p_now`: a balance below
-- its allowance is topped up to it (credits granted above it are kept, unused allowance
-- does not pile up), a `monthly_reset` ledger row records it, and the next reset is the
-- first of the following month (UTC). Idempotent: a second run finds nothing due, and a
-- concurrent run waits on the row and then skips it (its resets_at has moved on).
-- `p_now` exists so tests can move time; pg_cron calls it without arguments.
create function private.reset_monthly_credits(p_now timestamptz default now())
returns int
language sql volatile
set search_path = ''
as $$
  with due as (
    select b.org_id, b.balance as before from public.credit_balances b
    where b.resets_at <= p_now
    for update
  ), reset as (
    update public.credit_balances b
    set balance = greatest(b.balance, b.monthly_allowance),
        resets_at = private.next_credit_reset(p_now),
        updated_at = now()
    from due d
    where b.org_id = d.org_id and b.resets_at <= p_now
    returning b.org_id, b.balance, b.balance - d.before as amount
  ), entries as (
    insert into public.credit_transactions
      (org_id, environment, operation, amount, balance_after, reference)
    select r.org_id, 'live', 'monthly_reset', r.amount, r.balance,
           to_char(p_now at time zone 'UTC', 'YYYY-MM')
    from reset r
    returning 1
  )
  select count(*)::int from entries
$$;
revoke execute on function private.reset_monthly_credits(timestamptz) from public;

select cron.schedule('bivelio-reset-monthly-credits', '*/5 * * * *',
  'select private.reset_monthly_credits()');
