-- Fair claims: one organization's queued jobs cannot starve another's.
--
-- claim_jobs used to take due jobs oldest first from one global queue, so an organization
-- that queued thousands of slow instances held every worker slot, and another
-- organization's job waited behind the whole backlog (23 ms became 30-47 s).
--
-- Now every claim hands out turns. Within an organization, each job kind (a queue of its
-- own) takes turns: a kind's k-th oldest due job gets turn (leases the kind holds now) + k.
-- Across organizations, each organization takes turns the same way: its jobs, in the order
-- of their kind turns, get turn (leases the organization holds now) + 1, + 2, ... The claim
-- takes the lowest turns, oldest first on a tie. So with org A holding 100 due jobs and
-- org B one, a claim of 2 takes one of each; and when A's flood already fills every worker
-- slot, B's job (turn 1) takes the next free slot before A's next one (turn 33 with 32
-- slots). A flood of one kind (webhook deliveries) does not hold up the organization's
-- other kind (workflow steps) either. Partitioning the turns differently (by environment
-- too, say) changes only the `partition by` clauses below.
--
-- Cost: a claim reads at most p_limit jobs per (organization, kind) with queued jobs,
-- found by a loose index scan (one index probe per organization that has any job, due or
-- not), plus the held leases (a partial index of leased rows). A backlog of 10,000 due jobs
-- of one organization costs the same as 16: the old claim read them oldest first too.
-- Locking is as before: FOR UPDATE SKIP LOCKED on the jobs themselves, rechecked after the
-- lock (a job another worker claimed meanwhile is no longer due), and the lease, token and
-- claim count are set exactly as before.

-- The claim's per-(organization, kind) reads, oldest first. It replaces the index on
-- available_at alone, which only the FIFO claim used (the lease sweep uses the next one).
create index jobs_fair_claim_idx on private.jobs (org_id, kind, available_at);
drop index private.jobs_due_idx;
-- Leases held now (and expired ones the sweep has not voided yet): a handful of rows.
create index jobs_leased_idx on private.jobs (org_id, kind) where lease_token is not null;

-- No search_path clause, as 20261123000500_hot_path_functions.sql left it (not security
-- definer, service role only, tables qualified).
create or replace function private.claim_jobs(p_kinds text[], p_limit int, p_lease_seconds int)
returns setof private.jobs
language plpgsql volatile
as $$
declare
  -- The due jobs that may be claimed, best turn first (no lock taken yet).
  candidates bigint[];
begin
  with recursive queued_orgs (org_id) as (
    -- Loose index scan: each organization with a queued job, one index probe each.
    (select j.org_id from private.jobs j order by j.org_id limit 1)
    union all
    select (select j.org_id from private.jobs j where j.org_id > q.org_id
            order by j.org_id limit 1)
    from queued_orgs q
    where q.org_id is not null
  ),
  held_leases as (
    select j.org_id, j.kind, count(*) as leases
    from private.jobs j
    where j.lease_token is not null and j.available_at > now()
    group by j.org_id, j.kind
  ),
  -- Per organization and kind, the p_limit oldest due jobs: no claim can take more of them.
  kind_turns as (
    select d.id, q.org_id, d.available_at,
           coalesce(h.leases, 0) + row_number() over (
             partition by q.org_id, k.kind order by d.available_at, d.id
           ) as kind_turn
    from queued_orgs q
    cross join unnest(p_kinds) as k (kind)
    cross join lateral (
      select j.id, j.available_at from private.jobs j
      where j.org_id = q.org_id and j.kind = k.kind and j.available_at <= now()
      order by j.available_at
      limit p_limit
    ) d
    left join held_leases h on h.org_id = q.org_id and h.kind = k.kind
  ),
  org_turns as (
    select t.id, t.available_at,
           coalesce(h.leases, 0) + row_number() over (
             partition by t.org_id order by t.kind_turn, t.available_at, t.id
           ) as org_turn
    from kind_turns t
    left join (
      select org_id, sum(leases) as leases from held_leases group by org_id
    ) h on h.org_id = t.org_id
  )
  select array_agg(id order by org_turn, available_at, id) into candidates from org_turns;

  -- Lock and claim them in that order. The lock comes after the order and before the
  -- limit, as in a plain FOR UPDATE SKIP LOCKED queue: a job another worker holds is
  -- skipped and the next one taken; one claimed meanwhile fails the recheck of due-ness.
  -- (An array, not a join with the query above: the planner then looks each job up by
  -- its key instead of reading the whole table.)
  return query
  with due as (
    select j.id from unnest(candidates) with ordinality as c (id, turn)
    join private.jobs j on j.id = c.id
    where j.available_at <= now() and j.kind = any (p_kinds)
    order by c.turn
    limit p_limit
    for update of j skip locked
  )
  update private.jobs j
  set available_at = now() + make_interval(secs => p_lease_seconds),
      lease_token = gen_random_uuid(),
      claims = j.claims + 1
  from due
  where j.id = due.id
  returning j.*;
end
$$;
