-- Cron expressions for workflows triggered on a schedule: validation (for API errors) and
-- matching against a local wall-clock minute (for the pg_cron job that runs every minute).
--
-- Syntax is standard Vixie cron, as crontab(5) and pg_cron document it:
--   minute hour day-of-month month day-of-week
--   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
--                           jan-dec  sun-sat (names are case-insensitive)
-- Each field is a comma list of `*`, `a`, `a-b`, `*/n`, `a-b/n` or `a/n` (a to the maximum),
-- or the whole expression is one of @yearly, @annually, @monthly, @weekly, @daily, @midnight,
-- @hourly. When both day fields are restricted (neither starts with `*`) a day matches if
-- either matches; otherwise both must.
-- The expression functions are immutable and read nothing but the expression text (no
-- table access), so the per-minute scheduler can call them for every cron workflow.

-- One value of a field: a number within min_value..max_value, or (when names is given) a
-- name whose position in names counts from min_value (jan = 1, sun = 0).
create function private.cron_field_value(
  value text, label text, min_value int, max_value int, names text[] default null
) returns int
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  number numeric;
begin
  if value ~ '^[0-9]+$' then
    number := value::numeric;  -- numeric: no overflow on absurdly long digit strings
    if number between min_value and max_value then
      return number::int;
    end if;
    raise exception using errcode = 'invalid_parameter_value',
      message = format('%s field ''%s'' is out of range %s-%s', label, value, min_value, max_value);
  end if;
  if names is not null and lower(value) = any (names) then
    return min_value + array_position(names, lower(value)) - 1;
  end if;
  raise exception using errcode = 'invalid_parameter_value',
    message = case when names is null
      then format('%s field ''%s'' is not a number', label, value)
      else format('%s field ''%s'' is not a number or a name (%s-%s)',
                  label, value, names[1], names[cardinality(names)])
    end;
end
$$;

-- Every value a field allows, sorted and without duplicates, or an invalid_parameter_value
-- error saying what is wrong with it.
create function private.cron_field_values(
  field text, label text, min_value int, max_value int, names text[] default null
) returns int[]
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  item text;
  parts text[];
  base text;
  bounds text[];
  step int := 1;
  first_value int;
  last_value int;
  result int[] := '{}';
begin
  foreach item in array string_to_array(field, ',') loop
    if item = '' then
      raise exception using errcode = 'invalid_parameter_value',
        message = format('%s field ''%s'' has an empty list item', label, field);
    end if;

    -- item = base [ "/" step ]
    parts := string_to_array(item, '/');
    if cardinality(parts) > 2 then
      raise exception using errcode = 'invalid_parameter_value',
        message = format('%s field ''%s'' has more than one step', label, item);
    end if;
    base := parts[1];
    if cardinality(parts) = 2 then
      if parts[2] !~ '^[0-9]+$' then
        raise exception using errcode = 'invalid_parameter_value',
          message = format('%s field step ''%s'' is not a number', label, parts[2]);
      end if;
      if parts[2]::numeric not between 1 and max_value then
        raise exception using errcode = 'invalid_parameter_value',
          message = format('%s field step ''%s'' is out of range 1-%s', label, parts[2], max_value);
      end if;
      step := parts[2]::int;
    else
      step := 1;
    end if;

    -- base = "*" | value | value "-" value
    bounds := string_to_array(base, '-');
    if base = '*' then
      first_value := min_value;
      last_value := max_value;
    elsif cardinality(bounds) = 1 and base <> '' and base !~ '\*' then
      first_value := private.cron_field_value(base, label, min_value, max_value, names);
      -- A single value with a step (a/n) runs from a to the maximum.
      last_value := case when cardinality(parts) = 2 then max_value else first_value end;
    elsif cardinality(bounds) = 2 and bounds[1] <> '' and bounds[2] <> '' and base !~ '\*' then
      first_value := private.cron_field_value(bounds[1], label, min_value, max_value, names);
      last_value := private.cron_field_value(bounds[2], label, min_value, max_value, names);
      if first_value > last_value then
        raise exception using errcode = 'invalid_parameter_value',
          message = format('%s field range ''%s'' is reversed (start after end)', label, base);
      end if;
    else
      raise exception using errcode = 'invalid_parameter_value',
        message = format('%s field ''%s'' is not a valid value or range', label, item);
    end if;

    result := result || array(select generate_series(first_value, last_value, step));
  end loop;

  if strpos(field, ',') = 0 then
    return result;  -- one item: already sorted and distinct
  end if;
  return array(select distinct v from unnest(result) v order by v);
end
$$;

-- The five fields of an expression (macros replaced by what they stand for), or an
-- invalid_parameter_value error about its overall shape.
create function private.cron_fields(expression text) returns text[]
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  fields text[] := array_remove(regexp_split_to_array(coalesce(expression, ''), '\s+'), '');
  macro text;
begin
  if cardinality(fields) = 0 then
    raise exception using errcode = 'invalid_parameter_value', message = 'expression is empty';
  end if;
  if left(fields[1], 1) = '@' then
    macro := array_to_string(fields, ' ');
    fields := case lower(macro)
      when '@yearly' then '{0,0,1,1,*}'
      when '@annually' then '{0,0,1,1,*}'
      when '@monthly' then '{0,0,1,*,*}'
      when '@weekly' then '{0,0,*,*,0}'
      when '@daily' then '{0,0,*,*,*}'
      when '@midnight' then '{0,0,*,*,*}'
      when '@hourly' then '{0,*,*,*,*}'
    end;
    if fields is null then
      raise exception using errcode = 'invalid_parameter_value',
        message = format('unsupported macro ''%s'' (use @yearly, @annually, @monthly, @weekly, '
                         '@daily, @midnight or @hourly)', macro);
    end if;
    return fields;
  end if;
  if cardinality(fields) <> 5 then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('expected 5 fields (minute hour day-of-month month day-of-week), got %s',
                       cardinality(fields));
  end if;
  return fields;
end
$$;

-- Whether the local wall-clock minute `at` (seconds ignored) matches the expression; the
-- caller passes `now() at time zone <workflow time zone>`. An invalid expression is an
-- invalid_parameter_value error. Every field is checked, so an invalid expression fails
-- whatever the minute.
create function private.cron_matches(expression text, at timestamp) returns boolean
language plpgsql immutable strict parallel safe
set search_path = ''
as $$
declare
  fields text[] := private.cron_fields(expression);
  minutes int[] := private.cron_field_values(fields[1], 'minute', 0, 59);
  hours int[] := private.cron_field_values(fields[2], 'hour', 0, 23);
  days int[] := private.cron_field_values(fields[3], 'day-of-month', 1, 31);
  months int[] := private.cron_field_values(fields[4], 'month', 1, 12,
    '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}');
  weekdays int[] := private.cron_field_values(fields[5], 'day-of-week', 0, 7,
    '{sun,mon,tue,wed,thu,fri,sat}');
  weekday int := extract(dow from at)::int;  -- 0 = Sunday
  day_matches boolean := extract(day from at)::int = any (days);
  weekday_matches boolean := weekday = any (weekdays) or (weekday = 0 and 7 = any (weekdays));
begin
  return extract(minute from at)::int = any (minutes)
     and extract(hour from at)::int = any (hours)
     and extract(month from at)::int = any (months)
     and case
           -- Both day fields restricted: either one is enough (Vixie cron's rule).
           when left(fields[3], 1) <> '*' and left(fields[5], 1) <> '*'
             then day_matches or weekday_matches
           else day_matches and weekday_matches
         end;
end
$$;

-- Null when the expression is valid, otherwise a short message for an API error, such as
-- "minute field '61' is out of range 0-59".
create function private.cron_expression_error(expression text) returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  if expression is null then
    return 'expression is required';
  end if;
  perform private.cron_matches(expression, timestamp '2000-01-01 00:00');
  return null;
exception when invalid_parameter_value then
  return sqlerrm;
end
$$;

-- Null when Postgres knows the time zone (an IANA name such as 'Europe/Madrid', or 'UTC';
-- the exact spelling), otherwise a message. Reads pg_timezone_names (tens of milliseconds):
-- for validating input, not for the per-minute scheduler. 'localtime' (the server's zone),
-- 'posixrules' and 'Factory' are tz database files rather than zones, and are refused.
create function private.cron_timezone_error(tz text) returns text
language sql stable parallel safe
set search_path = ''
as $$
  with candidates as (
    select n.name
    from pg_catalog.pg_timezone_names n
    where lower(n.name) = lower(tz)
      and n.name not in ('localtime', 'posixrules', 'Factory')
  )
  select case
    when tz is null or tz = '' then 'time zone is required'
    when exists (select from candidates c where c.name = tz) then null
    else format('unknown time zone ''%s''', tz)
         || coalesce(' (did you mean ''' || (select min(c.name) from candidates c) || '''?)', '')
  end
$$;

-- The API validates expressions and time zones with these (as authenticated or
-- service_role); the helpers run with the caller's privileges, so they are granted too.
-- The explicit revoke is needed: a per-schema ALTER DEFAULT PRIVILEGES cannot take away
-- the built-in EXECUTE for PUBLIC, so functions in private are otherwise callable by anyone.
revoke execute on function
  private.cron_field_value(text, text, int, int, text[]),
  private.cron_field_values(text, text, int, int, text[]),
  private.cron_fields(text),
  private.cron_matches(text, timestamp),
  private.cron_expression_error(text),
  private.cron_timezone_error(text)
from public;
grant execute on function
  private.cron_field_value(text, text, int, int, text[]),
  private.cron_field_values(text, text, int, int, text[]),
  private.cron_fields(text),
  private.cron_matches(text, timestamp),
  private.cron_expression_error(text),
  private.cron_timezone_error(text)
to authenticated, service_role;
