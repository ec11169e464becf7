-- Sign-in limits for POST /v1/auth/token: failed attempts are counted per email and per
-- client address, and past a limit the API answers 429 instead of asking Supabase Auth, so
-- passwords cannot be guessed at the speed of the network.
--
-- An attempt is written before Auth is asked, as if it failed (so a burst of concurrent
-- guesses counts every guess), and removed again when it did not fail: a sign-in that
-- succeeds, or an error that is not the caller's (Auth unavailable). A successful password
-- sign-in also clears the email's earlier failures. Refused attempts are not written, so a
-- caller who waits `retry_after` gets its next attempt.
--
-- The counts are sliding windows over the rows of the last window (no fixed boundary to
-- burst across). The table is unlogged, like the request counters: it writes no WAL, and
-- after a crash the counts start again from zero.

create unlogged table private.sign_in_attempts (
  id bigint generated always as identity primary key,
  -- 'email:<lowercased email>' or 'address:<IPv4 address, or the /64 of an IPv6 address>'
  subject text not null,
  attempted_at timestamptz not null default clock_timestamp()
);
create index sign_in_attempts_subject_time on private.sign_in_attempts (subject, attempted_at);

-- The limits, changeable without a deploy (`update private.sign_in_limits ...`).
create table private.sign_in_limits (
  kind text primary key check (kind in ('email', 'address')),
  max_failures int not null check (max_failures > 0),
  window_seconds int not null check (window_seconds between 1 and 86400)
);
insert into private.sign_in_limits values
  -- Guessing one account's password: 10 tries per 15 minutes, from anywhere.
  ('email', 10, 900),
  -- One address guessing many accounts (or refresh tokens): 30 failures per 15 minutes.
  ('address', 30, 900);

-- The key an address is counted under: an IPv4 address, or the /64 network of an IPv6
-- address (one subscriber usually holds a whole /64, so single addresses cost nothing).
create function private.sign_in_address_subject(p_address inet) returns text
language sql immutable
set search_path = ''
as $$
  select 'address:' || host(network(set_masklen(p_address,
    case when family(p_address) = 6 then 64 else 32 end)))
$$;

-- One round trip before Auth is asked: for each subject (the address, then the email; a
-- null one is skipped) counts its failures inside its window; over a limit it answers
-- allowed = false with the subject's kind and the seconds until enough of them age out;
-- otherwise it records the attempt under every subject and returns the rows' ids for
-- private.end_sign_in_attempt. Transaction-level advisory locks per subject make
-- concurrent attempts count one after the other.
create function private.begin_sign_in_attempt(p_email text, p_address inet)
returns table (allowed boolean, limited_by text, retry_after int, attempt_ids bigint[])
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  subjects text[] := array[]::text[];
  kinds text[] := array[]::text[];
  limit_row private.sign_in_limits;
  now_ts timestamptz;
  failures int;
  leaves_at timestamptz;
begin
  if p_address is not null then
    subjects := subjects || private.sign_in_address_subject(p_address);
    kinds := kinds || 'address'::text;
  end if;
  if p_email is not null then
    subjects := subjects || ('email:' || lower(trim(p_email)));
    kinds := kinds || 'email'::text;
  end if;
  -- Always address before email, so two attempts never wait for each other in a cycle.
  for i in 1 .. coalesce(array_length(subjects, 1), 0) loop
    perform pg_advisory_xact_lock(20261201, hashtext(subjects[i]));
  end loop;
  now_ts := clock_timestamp();

  for i in 1 .. coalesce(array_length(subjects, 1), 0) loop
    select * into limit_row from private.sign_in_limits l where l.kind = kinds[i];
    select count(*) into failures from private.sign_in_attempts a
    where a.subject = subjects[i]
      and a.attempted_at > now_ts - make_interval(secs => limit_row.window_seconds);
    if failures >= limit_row.max_failures then
      -- The attempt that must leave the window before one more is allowed.
      select a.attempted_at into leaves_at from private.sign_in_attempts a
      where a.subject = subjects[i]
        and a.attempted_at > now_ts - make_interval(secs => limit_row.window_seconds)
      order by a.attempted_at
      offset failures - limit_row.max_failures limit 1;
      allowed := false;
      limited_by := kinds[i];
      retry_after := greatest(1, ceil(extract(epoch from
        leaves_at + make_interval(secs => limit_row.window_seconds) - now_ts)))::int;
      return next;
      return;
    end if;
  end loop;

  allowed := true;
  with inserted as (
    insert into private.sign_in_attempts (subject, attempted_at)
    select s, now_ts from unnest(subjects) s
    returning id
  )
  select coalesce(array_agg(inserted.id), array[]::bigint[]) into attempt_ids from inserted;
  return next;
end
$$;

-- After Auth answered with anything but a failed sign-in: the attempt does not count.
-- p_signed_in_email: a password sign-in succeeded, so the email's failures are forgotten
-- (only someone who knows the password can do that; the address's failures stay).
create function private.end_sign_in_attempt(p_attempt_ids bigint[], p_signed_in_email text)
returns void
language sql volatile security definer
set search_path = ''
as $$
  delete from private.sign_in_attempts
  where id = any (p_attempt_ids)
     or subject = 'email:' || lower(trim(p_signed_in_email));
$$;

-- Rows older than the longest window count for nothing.
create function private.purge_sign_in_attempts() returns void
language sql volatile security definer
set search_path = ''
as $$
  delete from private.sign_in_attempts
  where attempted_at < clock_timestamp()
    - make_interval(secs => (select max(window_seconds) from private.sign_in_limits));
$$;

revoke execute on function private.sign_in_address_subject(inet),
  private.begin_sign_in_attempt(text, inet), private.end_sign_in_attempt(bigint[], text),
  private.purge_sign_in_attempts() from public;
grant execute on function private.begin_sign_in_attempt(text, inet),
  private.end_sign_in_attempt(bigint[], text) to service_role;

select cron.schedule('bivelio-purge-sign-in-attempts', '*/5 * * * *',
  'select private.purge_sign_in_attempts()');
