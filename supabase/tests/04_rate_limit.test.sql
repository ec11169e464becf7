-- private.consume_rate_limit: per-organization fixed windows of one minute and one second.
-- A window's count is the organization's request sequence minus the window's base
-- (pg_temp.counts below reads both counts).
--
-- The function reads clock_timestamp(), so anything that depends on calls falling in the
-- same window is measured by a block that notes the clock before and after and retries
-- (up to 5 times) when a second boundary fell in between. The burst also starts just after
-- a second boundary, so 25 calls taking a few milliseconds have almost a whole second. Only
-- the results of an attempt that stayed inside one second are asserted on, so the
-- assertions cannot flake on timing.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(24);

-- The organization's counts in its current minute and second windows.
create function pg_temp.counts(p_org text, out minute_count bigint, out second_count bigint)
language sql as $$
  select pg_sequence_last_value(private.request_sequence(p_org)) - minute_base,
         pg_sequence_last_value(private.request_sequence(p_org)) - second_base
  from private.rate_limit_counters where org_id = p_org
$$;

insert into public.organizations (id, name, plan, custom_requests_per_minute,
                                  custom_requests_per_second) values
  ('org_rl_starter', 'RL starter', 'starter', null, null),
  ('org_rl_burst', 'RL burst', 'starter', null, null),
  ('org_rl_minute', 'RL minute', 'starter', null, null),
  ('org_rl_pro', 'RL pro', 'pro', null, null),
  ('org_rl_ent', 'RL enterprise', 'enterprise', null, null),
  ('org_rl_custom', 'RL custom', 'enterprise', 7, 3);

-- ---------------------------------------------------------------------------------------
-- A first request
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select limit_per_minute, limit_per_second, remaining, exceeded, retry_after
    from private.consume_rate_limit('org_rl_starter')$$,
  $$values (100, 20, 99, null::text, null::int)$$,
  'starter: the first request is allowed, with limits 100/min and 20/s and 99 remaining'
);
select results_eq(
  $$select * from pg_temp.counts('org_rl_starter')$$,
  $$values (1::bigint, 1::bigint)$$,
  'the first request starts both windows with a count of 1'
);
-- reset_at is the end of the minute of the call: a whole minute, after the transaction
-- started (now() <= call time) and at most 60 s after the call.
select ok(
  (select reset_at % 60 = 0
          and reset_at > extract(epoch from now())
          and reset_at <= extract(epoch from clock_timestamp()) + 60
   from private.consume_rate_limit('org_rl_starter')),
  'reset_at is the epoch second at which the current minute ends'
);
select results_eq(
  $$select limit_per_minute, limit_per_second, exceeded
    from private.consume_rate_limit('org_rl_pro')$$,
  $$values (500, 50, null::text)$$,
  'pro: limits 500/min and 50/s'
);

-- ---------------------------------------------------------------------------------------
-- Burst: 25 requests within one second
-- ---------------------------------------------------------------------------------------
create temp table burst (n int, remaining int, exceeded text, retry_after int) on commit drop;
do $$
declare
  t0 timestamptz;
  t1 timestamptz;
  r record;
begin
  for attempt in 1..5 loop
    delete from burst;
    delete from private.rate_limit_counters where org_id = 'org_rl_burst';
    -- Sleep until 1 ms past the next second boundary.
    perform pg_sleep(1.001 - (extract(microseconds from clock_timestamp()) % 1000000) / 1e6);
    t0 := clock_timestamp();
    for i in 1..25 loop
      select * into r from private.consume_rate_limit('org_rl_burst');
      insert into burst values (i, r.remaining, r.exceeded, r.retry_after);
    end loop;
    t1 := clock_timestamp();
    if date_trunc('second', t0) = date_trunc('second', t1) then
      return;
    end if;
  end loop;
  raise exception 'could not fit 25 calls into one second in 5 attempts';
end
$$;

select results_eq(
  'select n from burst where exceeded is null order by n',
  'select generate_series(1, 20)',
  'starter: the first 20 requests of a second are allowed'
);
select results_eq(
  $$select n, exceeded, retry_after from burst where exceeded is not null order by n$$,
  $$select g, 'second', 1 from generate_series(21, 25) g$$,
  'starter: requests 21-25 of the same second exceed the per-second limit, retry after 1 s'
);
select results_eq(
  'select remaining from burst order by n',
  'select 100 - g from generate_series(1, 25) g',
  'every request counts towards the minute, including the rejected ones'
);

-- ---------------------------------------------------------------------------------------
-- Boundaries, with the counter row preset for the current minute and second
-- ---------------------------------------------------------------------------------------
-- Presets the organization's counters to the given counts in the current minute and
-- second, makes one call and returns its result as jsonb; retries when a second boundary
-- fell between preset and call (which would have reset a window).
create function pg_temp.consume_after(p_org text, p_minute_count int, p_second_count int)
returns jsonb
language plpgsql as $$
declare
  t0 timestamptz;
  t1 timestamptz;
  result jsonb;
begin
  for attempt in 1..5 loop
    t0 := clock_timestamp();
    -- The bases sit that many requests below the sequence's last number.
    insert into private.rate_limit_counters as c
      select p_org, date_trunc('minute', t0), n - p_minute_count,
             date_trunc('second', t0), n - p_second_count
      from nextval(private.request_sequence(p_org)) n
    on conflict (org_id) do update set minute_start = excluded.minute_start,
      minute_base = excluded.minute_base, second_start = excluded.second_start,
      second_base = excluded.second_base;
    select to_jsonb(r) into result from private.consume_rate_limit(p_org) r;
    t1 := clock_timestamp();
    if date_trunc('second', t0) = date_trunc('second', t1) then
      return result;
    end if;
  end loop;
  raise exception 'a second boundary fell between preset and call in 5 attempts';
end
$$;

create temp table minute_result on commit drop as
  select pg_temp.consume_after('org_rl_minute', 100, 0) as r;
select is(
  (select r - 'reset_at' - 'retry_after' from minute_result),
  '{"limit_per_minute":100,"limit_per_second":20,"remaining":0,"exceeded":"minute"}'::jsonb,
  'starter: the 101st request of a minute exceeds the per-minute limit, 0 remaining'
);
select ok(
  (select (r ->> 'retry_after')::int between 1 and 60 from minute_result),
  'retry_after for the minute limit is the 1-60 s left in the minute'
);
select is(
  pg_temp.consume_after('org_rl_minute', 99, 0) -> 'exceeded',
  'null'::jsonb,
  'starter: the 100th request of a minute is still allowed'
);
select is(
  pg_temp.consume_after('org_rl_minute', 50, 19) -> 'exceeded',
  'null'::jsonb,
  'starter: the 20th request of a second is still allowed'
);
select is(
  pg_temp.consume_after('org_rl_minute', 50, 20) - 'reset_at',
  '{"limit_per_minute":100,"limit_per_second":20,"remaining":49,"exceeded":"second","retry_after":1}'::jsonb,
  'starter: the 21st request of a second exceeds the per-second limit (49 left in the minute)'
);
select is(
  pg_temp.consume_after('org_rl_minute', 100, 20) ->> 'exceeded',
  'minute',
  'when both limits are exceeded, the minute limit is reported'
);

-- A full counter from a past minute does not block: the new minute starts at 1.
update private.rate_limit_counters
set minute_start = date_trunc('minute', now()) - interval '1 minute',
    minute_base = pg_sequence_last_value(private.request_sequence(org_id)) - 100,
    second_start = date_trunc('second', now()) - interval '1 minute',
    second_base = pg_sequence_last_value(private.request_sequence(org_id)) - 20
where org_id = 'org_rl_minute';
select results_eq(
  $$select remaining, exceeded from private.consume_rate_limit('org_rl_minute')$$,
  $$values (99, null::text)$$,
  'a new minute resets the count (previous minute full, this request allowed)'
);
select results_eq(
  $$select * from pg_temp.counts('org_rl_minute')$$,
  $$values (1::bigint, 1::bigint)$$,
  'both windows restart at 1'
);

-- Deleting an organization drops its request sequence.
delete from public.organizations where id = 'org_rl_burst';
select is(
  to_regclass('private.rate_limit_' || md5('org_rl_burst')),
  null,
  'a deleted organization''s request sequence is dropped with it'
);

-- ---------------------------------------------------------------------------------------
-- Enterprise and custom limits
-- ---------------------------------------------------------------------------------------
select results_eq(
  $$select limit_per_minute, limit_per_second, remaining, reset_at, exceeded, retry_after
    from private.consume_rate_limit('org_rl_ent')$$,
  $$values (null::int, null::int, null::int, null::bigint, null::text, null::int)$$,
  'enterprise without custom limits is unlimited (all nulls)'
);
select is_empty(
  $$select from private.rate_limit_counters where org_id = 'org_rl_ent'$$,
  'nothing is counted for an unlimited organization'
);
select results_eq(
  $$select limit_per_minute, limit_per_second, remaining, exceeded
    from private.consume_rate_limit('org_rl_custom')$$,
  $$values (7, 3, 6, null::text)$$,
  'custom per-minute/per-second limits override the plan''s'
);

select is(
  pg_temp.consume_after('org_rl_custom', 7, 0) ->> 'exceeded',
  'minute',
  'the custom per-minute limit is enforced'
);
select is(
  pg_temp.consume_after('org_rl_custom', 1, 3) ->> 'exceeded',
  'second',
  'the custom per-second limit is enforced'
);

-- ---------------------------------------------------------------------------------------
-- Privileges: the API role cannot count or reset rate limits
-- ---------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role":"authenticated","org_id":"org_rl_starter","environment":"live"}';
select throws_ok(
  $$select * from private.consume_rate_limit('org_rl_starter')$$,
  '42501',
  null,
  'authenticated cannot run consume_rate_limit (no access to plan limits or counters)'
);
select throws_ok(
  $$delete from private.rate_limit_counters$$,
  '42501',
  'permission denied for table rate_limit_counters',
  'authenticated cannot reset rate-limit counters'
);
set local role anon;
select throws_ok(
  $$select * from private.rate_limit_counters$$,
  '42501',
  'permission denied for table rate_limit_counters',
  'anon cannot read rate-limit counters'
);
reset role;

select * from finish();
rollback;
