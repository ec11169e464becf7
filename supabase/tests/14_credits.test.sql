-- Credits in the database: balances made for every organization with its plan's allowance,
-- row-level security of balances (by organization) and the ledger (by organization and
-- environment), the debit that never goes below zero, refunds at most once, the sandbox's
-- simulated rows, the append-only ledger, the monthly reset and the sandbox purge.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(37);

-- Fixtures (as the superuser, which bypasses RLS).
insert into public.organizations (id, name, plan) values
  ('org_cr_a', 'Credits Org A', 'starter'),
  ('org_cr_b', 'Credits Org B', 'pro'),
  ('org_cr_c', 'Credits Org C', 'enterprise');

-- ---------------------------------------------------------------------------------------
-- Balances
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select org_id, balance, monthly_allowance from public.credit_balances
    where org_id like 'org_cr_%' order by org_id$$,
  $$values ('org_cr_a'::text, 500, 500), ('org_cr_b', 5000, 5000), ('org_cr_c', 50000, 50000)$$,
  'a new organization gets a balance of its plan''s allowance (500 / 5,000 / 50,000)'
);
select is(
  (select resets_at from public.credit_balances where org_id = 'org_cr_a'),
  date_trunc('month', now() at time zone 'UTC') at time zone 'UTC' + interval '1 month',
  'the first reset is the first of next month, 00:00 UTC'
);
select is(
  (select count(*)::int from public.organizations o
   where not exists (select from public.credit_balances b where b.org_id = o.id)),
  0,
  'every organization has a balance (the seed''s included)'
);
update public.organizations set plan = 'enterprise' where id = 'org_cr_a';
select results_eq(
  $$select balance, monthly_allowance from public.credit_balances where org_id = 'org_cr_a'$$,
  $$values (500, 50000)$$,
  'a plan change brings the new allowance; the balance waits for the reset'
);
update public.organizations set plan = 'starter' where id = 'org_cr_a';
select throws_ok(
  $$update public.credit_balances set balance = -1 where org_id = 'org_cr_a'$$,
  '23514', null,
  'the balance can never be negative, whoever writes it'
);

-- ---------------------------------------------------------------------------------------
-- Debits as the API role (live)
-- ---------------------------------------------------------------------------------------
update public.credit_balances set balance = 5 where org_id = 'org_cr_a';
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_cr_a","environment":"live"}';

select results_eq(
  $$select covered, balance from private.debit_credits('agent_invoke', 3, 'age_cr_1')$$,
  $$values (true, 2)$$,
  'a covered debit answers the balance after it'
);
select results_eq(
  $$select covered, balance, transaction_id from private.debit_credits('ocr_extraction', 3, 'doc_cr_1')$$,
  $$values (false, 2, null::text)$$,
  'a debit the balance cannot cover is refused, with the balance it found'
);
select results_eq(
  $$select covered, balance from private.debit_credits('document_classification', 2, 'doc_cr_2')$$,
  $$values (true, 0)$$,
  'a debit of exactly the balance is covered and leaves 0'
);
select results_eq(
  $$select balance from public.credit_balances$$,
  $$values (0)$$,
  'the caller reads its own balance only'
);
select results_eq(
  $$select operation, amount, balance_after, reference, simulated from public.credit_transactions order by seq$$,
  $$values ('agent_invoke'::text, -3, 2, 'age_cr_1'::text, false),
           ('document_classification', -2, 0, 'doc_cr_2', false)$$,
  'covered debits are in the ledger with the balance after them; the refused one is not'
);
select throws_ok(
  $$select * from private.debit_credits('refund', 3, 'x')$$,
  '22023', null,
  'only chargeable operations can be debited'
);
select throws_ok(
  $$select * from private.debit_credits('agent_invoke', 0, 'x')$$,
  '22023', null,
  'a debit must be positive'
);
select throws_ok(
  $$select * from private.debit_credits('agent_invoke', -5, 'x')$$,
  '22023', null,
  'a negative debit (a disguised credit) is refused'
);

-- ---------------------------------------------------------------------------------------
-- Refunds
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select refunded, balance from private.refund_credits('age_cr_1')$$,
  $$values (3, 3)$$,
  'a refund gives the debit back'
);
select results_eq(
  $$select refunded, balance from private.refund_credits('age_cr_1')$$,
  $$values (0, 3)$$,
  'a second refund of the same reference gives nothing'
);
select results_eq(
  $$select refunded from private.refund_credits('no_such_reference')$$,
  $$values (0)$$,
  'an unknown reference refunds nothing'
);
select is(
  (select r.refund_of from public.credit_transactions r where r.operation = 'refund'),
  (select d.id from public.credit_transactions d where d.reference = 'age_cr_1' and d.amount < 0),
  'the refund names the debit it gave back'
);
reset role;
select throws_ok(
  $$insert into public.credit_transactions (org_id, environment, operation, amount, balance_after, refund_of)
    select org_id, environment, 'refund', 3, 6, refund_of from public.credit_transactions
    where operation = 'refund' and org_id = 'org_cr_a'$$,
  '23505', null,
  'a debit can be refunded at most once, whoever writes (refund_of is unique)'
);

-- ---------------------------------------------------------------------------------------
-- The sandbox
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_cr_a","environment":"test"}';
select results_eq(
  $$select covered, balance from private.debit_credits('workflow_generation', 5000, 'req_cr_sb')$$,
  $$values (true, null::int)$$,
  'a sandbox debit is never refused and has no balance'
);
select results_eq(
  $$select refunded, balance from private.refund_credits('req_cr_sb')$$,
  $$values (5000, null::int)$$,
  'a sandbox refund is simulated too'
);
select results_eq(
  $$select operation, amount, balance_after, simulated from public.credit_transactions order by seq$$,
  $$values ('workflow_generation'::text, -5000, null::int, true), ('refund', 5000, null, true)$$,
  'sandbox callers see only their simulated rows'
);
select results_eq(
  $$select balance from public.credit_balances$$,
  $$values (3)$$,
  'sandbox callers read the real balance, which the sandbox never changed'
);

-- ---------------------------------------------------------------------------------------
-- Isolation and the API role's rights
-- ---------------------------------------------------------------------------------------
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_cr_b","environment":"live"}';
select is_empty(
  $$select 1 from public.credit_transactions where org_id = 'org_cr_a'$$,
  'another organization''s ledger is invisible'
);
select results_eq(
  $$select org_id from public.credit_balances$$,
  $$values ('org_cr_b'::text)$$,
  'another organization''s balance is invisible'
);
select results_eq(
  $$select refunded from private.refund_credits('doc_cr_2')$$,
  $$values (0)$$,
  'a refund cannot reach another organization''s debit'
);
select throws_ok(
  $$update public.credit_balances set balance = balance + 1000$$,
  '42501', null,
  'the API role cannot write balances'
);
select throws_ok(
  $$insert into public.credit_transactions (org_id, environment, operation, amount, balance_after)
    values ('org_cr_b', 'live', 'grant', 1000, 6000)$$,
  '42501', null,
  'the API role cannot write the ledger'
);
select throws_ok(
  $$delete from public.credit_transactions$$,
  '42501', null,
  'the API role cannot delete from the ledger'
);
select throws_ok(
  $$select private.grant_credits('org_cr_b', 1000)$$,
  '42501', null,
  'the API role cannot grant credits'
);
select throws_ok(
  $$select private.reset_monthly_credits()$$,
  '42501', null,
  'the API role cannot run the monthly reset'
);
reset role;
select throws_ok(
  $$update public.credit_transactions set amount = 1000 where org_id = 'org_cr_a'$$,
  '42501', null,
  'the ledger is append-only, even for its owner'
);

-- ---------------------------------------------------------------------------------------
-- The monthly reset
-- ---------------------------------------------------------------------------------------
update public.credit_balances set balance = 70000 where org_id = 'org_cr_c';
update public.credit_balances set resets_at = now() - interval '1 minute'
where org_id in ('org_cr_a', 'org_cr_c');
select is(
  private.reset_monthly_credits(),
  2,
  'the reset restores the balances that are due, and only those'
);
select results_eq(
  $$select org_id, balance, resets_at from public.credit_balances
    where org_id in ('org_cr_a', 'org_cr_c') order by org_id$$,
  $$values ('org_cr_a'::text, 500, private.next_credit_reset(now())),
           ('org_cr_c', 70000, private.next_credit_reset(now()))$$,
  'a balance below the allowance is topped up to it, one above is kept; next reset next month'
);
select results_eq(
  $$select org_id, amount, balance_after from public.credit_transactions
    where operation = 'monthly_reset' and org_id like 'org_cr_%' order by org_id$$,
  $$values ('org_cr_a'::text, 497, 500), ('org_cr_c', 0, 70000)$$,
  'each reset is a monthly_reset ledger row'
);
select is(private.reset_monthly_credits(), 0, 'a second run restores nothing (idempotent)');
select results_eq(
  $$select schedule, command, active from cron.job where jobname = 'bivelio-reset-monthly-credits'$$,
  $$values ('*/5 * * * *'::text, 'select private.reset_monthly_credits()'::text, true)$$,
  'pg_cron runs the reset every 5 minutes'
);

-- ---------------------------------------------------------------------------------------
-- The sandbox purge
-- ---------------------------------------------------------------------------------------
insert into public.credit_transactions (org_id, environment, operation, amount, reference, created_at)
values ('org_cr_b', 'test', 'agent_invoke', -1, 'age_cr_old', now() - interval '25 hours');
select private.purge_expired_data();
select results_eq(
  $$select environment, count(*)::int from public.credit_transactions
    where org_id in ('org_cr_a', 'org_cr_b') group by environment order by environment$$,
  $$values ('live'::text, 4), ('test', 2)$$,
  'the purge removes sandbox ledger rows older than 24 hours and keeps live ones and recent ones'
);

select * from finish();
rollback;
