-- Cron expressions of scheduled workflows: what private.cron_matches matches (macros, lists,
-- ranges, steps, names, the day-of-month/day-of-week rule, Sunday as 0 or 7, seconds
-- ignored, local time through a real time-zone conversion), the messages of
-- private.cron_expression_error and private.cron_timezone_error, and who may call them.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;

select plan(177);

-- ---------------------------------------------------------------------------------------
-- Declared properties and privileges
-- ---------------------------------------------------------------------------------------
select volatility_is('private', 'cron_matches', array['text', 'timestamp without time zone'],
  'immutable', 'cron_matches is immutable');
select volatility_is('private', 'cron_expression_error', array['text'], 'immutable',
  'cron_expression_error is immutable');
select volatility_is('private', 'cron_timezone_error', array['text'], 'stable',
  'cron_timezone_error is stable (time zone data can change)');

-- ---------------------------------------------------------------------------------------
-- Matching (2026-07-01 is a Wednesday; 2026-07-05 a Sunday)
-- ---------------------------------------------------------------------------------------
select is(
  private.cron_matches(expression, at::timestamp), expected,
  format('%s %s %s', quote_literal(expression),
         case when expected then 'matches' else 'does not match' end, at)
  || coalesce(' (' || why || ')', '')
)
from (values
  -- Macros
  ('@yearly', '2026-01-01 00:00', true, null),
  ('@yearly', '2026-02-01 00:00', false, 'not January'),
  ('@yearly', '2026-01-01 00:01', false, 'not minute 0'),
  ('@annually', '2026-01-01 00:00', true, null),
  ('@annually', '2026-06-01 00:00', false, null),
  ('@monthly', '2026-03-01 00:00', true, null),
  ('@monthly', '2026-03-02 00:00', false, 'not the 1st'),
  ('@weekly', '2026-07-05 00:00', true, 'Sunday'),
  ('@weekly', '2026-07-06 00:00', false, 'Monday'),
  ('@daily', '2026-07-06 00:00', true, null),
  ('@daily', '2026-07-06 00:30', false, null),
  ('@midnight', '2026-07-06 00:00', true, null),
  ('@midnight', '2026-07-06 12:00', false, null),
  ('@hourly', '2026-07-06 13:00', true, null),
  ('@hourly', '2026-07-06 13:01', false, null),
  ('@HOURLY', '2026-07-06 13:00', true, 'macros are case-insensitive'),
  -- Stars and single values
  ('* * * * *', '2026-07-01 17:43', true, 'every minute'),
  ('30 14 * * *', '2026-07-01 14:30', true, null),
  ('30 14 * * *', '2026-07-01 14:31', false, null),
  ('30 14 * * *', '2026-07-01 15:30', false, null),
  ('00 09 * * *', '2026-07-01 09:00', true, 'leading zeros'),
  -- Lists and ranges
  ('0,15,45 * * * *', '2026-07-01 10:15', true, null),
  ('0,15,45 * * * *', '2026-07-01 10:30', false, null),
  ('* 9-17 * * *', '2026-07-01 17:59', true, 'range end included'),
  ('* 9-17 * * *', '2026-07-01 09:00', true, 'range start included'),
  ('* 9-17 * * *', '2026-07-01 18:00', false, null),
  ('* 9-17 * * *', '2026-07-01 08:59', false, null),
  ('5,10-12,*/30 * * * *', '2026-07-01 10:11', true, 'list of a value, a range and a step'),
  ('5,10-12,*/30 * * * *', '2026-07-01 10:30', true, null),
  ('5,10-12,*/30 * * * *', '2026-07-01 10:13', false, null),
  -- Steps
  ('*/15 * * * *', '2026-07-01 10:45', true, null),
  ('*/15 * * * *', '2026-07-01 10:50', false, null),
  ('0 */6 * * *', '2026-07-01 18:00', true, null),
  ('0 */6 * * *', '2026-07-01 20:00', false, null),
  ('10-30/10 * * * *', '2026-07-01 10:20', true, 'a-b/n'),
  ('10-30/10 * * * *', '2026-07-01 10:25', false, 'a-b/n: off the step'),
  ('10-30/10 * * * *', '2026-07-01 10:40', false, 'a-b/n: past the end'),
  ('50/5 * * * *', '2026-07-01 10:55', true, 'a/n runs from a to the maximum'),
  ('50/5 * * * *', '2026-07-01 10:50', true, 'a/n includes a'),
  ('50/5 * * * *', '2026-07-01 10:45', false, 'a/n starts at a'),
  ('0 0 */10 * *', '2026-07-21 00:00', true, 'day-of-month steps count from 1'),
  ('0 0 */10 * *', '2026-07-20 00:00', false, null),
  -- Month and day names
  ('0 0 1 jan-mar *', '2026-03-01 00:00', true, null),
  ('0 0 1 jan-mar *', '2026-04-01 00:00', false, null),
  ('0 0 1 JUL,Dec *', '2026-07-01 00:00', true, 'names are case-insensitive'),
  ('0 0 1 jan-dec/2 *', '2026-07-01 00:00', true, 'a named range with a step'),
  ('0 0 1 jan-dec/2 *', '2026-08-01 00:00', false, null),
  ('0 9 * * mon-fri', '2026-07-03 09:00', true, 'Friday'),
  ('0 9 * * mon-fri', '2026-07-04 09:00', false, 'Saturday'),
  ('0 9 * * Sat,SUN', '2026-07-04 09:00', true, null),
  -- Sunday is 0 and 7
  ('0 9 * * 0', '2026-07-05 09:00', true, null),
  ('0 9 * * 7', '2026-07-05 09:00', true, '7 is Sunday'),
  ('0 9 * * 7', '2026-07-04 09:00', false, 'Saturday'),
  ('0 9 * * sun', '2026-07-05 09:00', true, null),
  ('0 9 * * 5-7', '2026-07-05 09:00', true, 'a range ending at 7 includes Sunday'),
  ('0 9 * * 5-7', '2026-07-02 09:00', false, 'Thursday'),
  ('0 9 * * 1/2', '2026-07-05 09:00', true, 'a/n goes up to 7, Sunday, as in cronie'),
  ('0 9 * * 1/2', '2026-07-06 09:00', true, 'Monday'),
  ('0 9 * * 1/2', '2026-07-07 09:00', false, 'Tuesday'),
  -- Day of month and day of week: either when both are restricted, else both
  ('0 0 13 * fri', '2026-07-03 00:00', true, 'a Friday that is not the 13th'),
  ('0 0 13 * fri', '2026-07-13 00:00', true, 'a 13th that is a Monday'),
  ('0 0 13 * fri', '2026-07-14 00:00', false, 'neither'),
  ('0 0 13 * *', '2026-07-13 00:00', true, null),
  ('0 0 13 * *', '2026-07-03 00:00', false, 'only day-of-month is restricted'),
  ('0 0 * * fri', '2026-07-03 00:00', true, null),
  ('0 0 * * fri', '2026-07-13 00:00', false, 'only day-of-week is restricted'),
  ('0 0 */2 * fri', '2026-07-03 00:00', true, 'odd day and Friday'),
  ('0 0 */2 * fri', '2026-07-10 00:00', false, 'a field starting with * counts as unrestricted'),
  ('0 0 */2 * fri', '2026-07-01 00:00', false, 'odd day but Wednesday'),
  ('0 0 1-31 * fri', '2026-07-01 00:00', true, '1-31 does not start with *: either'),
  ('0 0 31 * *', '2026-06-30 00:00', false, 'the 31st never comes in June'),
  ('0 0 31 * *', '2026-07-31 00:00', true, null),
  ('0 0 29 2 *', '2028-02-29 00:00', true, 'a leap day'),
  -- Seconds are ignored
  ('30 14 * * *', '2026-07-01 14:30:59.999', true, 'seconds ignored'),
  ('30 14 * * *', '2026-07-01 14:29:59.999', false, 'seconds do not round up'),
  -- Whitespace
  (E'  0\t9   * * *  ', '2026-07-01 09:00', true, 'tabs and repeated spaces separate fields')
) t(expression, at, expected, why);

select is(private.cron_matches('* * * * *', null), null, 'a null minute gives null');
select is(private.cron_matches(null, '2026-07-01 09:00'), null, 'a null expression gives null');

-- ---------------------------------------------------------------------------------------
-- Matching local time through a real time-zone conversion (as the scheduler calls it)
-- ---------------------------------------------------------------------------------------
select is(
  private.cron_matches(expression, utc::timestamptz at time zone tz), expected,
  format('%s in %s %s at %s', quote_literal(expression), tz,
         case when expected then 'matches' else 'does not match' end, utc)
  || coalesce(' (' || why || ')', '')
)
from (values
  ('0 9 * * *', 'Europe/Madrid', '2026-07-01 07:00:00+00', true, 'CEST, UTC+2'),
  ('0 9 * * *', 'Europe/Madrid', '2026-07-01 09:00:00+00', false, 'that is 11:00 in Madrid'),
  ('0 9 * * *', 'Europe/Madrid', '2026-01-15 08:00:00+00', true, 'CET, UTC+1'),
  ('0 9 * * *', 'Europe/Madrid', '2026-01-15 07:00:00+00', false, null),
  ('0 9 * * *', 'UTC', '2026-07-01 09:00:00+00', true, null),
  ('30 17 * * *', 'America/New_York', '2026-07-01 21:30:00+00', true, 'EDT, UTC-4'),
  ('0 0 * * mon', 'Asia/Tokyo', '2026-07-05 15:00:00+00', true,
   'the day of week is the local one: Sunday in UTC, Monday in Tokyo'),
  ('0 0 * * mon', 'Asia/Tokyo', '2026-07-06 00:00:00+00', false, 'Monday 09:00 in Tokyo'),
  ('30 5 * * *', 'Asia/Kolkata', '2026-07-01 00:00:00+00', true, 'a half-hour offset, UTC+5:30')
) t(expression, tz, utc, expected, why);

-- ---------------------------------------------------------------------------------------
-- Valid expressions
-- ---------------------------------------------------------------------------------------
select is(private.cron_expression_error(expression), null,
  format('%s is valid', quote_literal(expression)))
from (values
  ('* * * * *'), ('0 0 1 1 *'), ('59 23 31 12 6'), ('0 0 * * 7'), ('0 0 * * 0-7'),
  ('*/5 * * * *'), ('0 9-17/2 * * mon-fri'), ('0 0 1,15 * *'), ('15 10 * JAN-MAR,oct sun'),
  ('5/15 * * * *'), ('0 0 1-1 * *'), ('*/1 */23 */31 */12 */7'), (E'0\t9 * * *'),
  ('@yearly'), ('@annually'), ('@monthly'), ('@weekly'), ('@daily'), ('@midnight'),
  ('@hourly'), ('  @daily  ')
) t(expression);

-- ---------------------------------------------------------------------------------------
-- Invalid expressions and their messages
-- ---------------------------------------------------------------------------------------
select is(private.cron_expression_error(expression), message,
  format('%s is refused', coalesce(quote_literal(expression), 'null')))
from (values
  (null, 'expression is required'),
  ('', 'expression is empty'),
  ('   ', 'expression is empty'),
  ('* * * *', 'expected 5 fields (minute hour day-of-month month day-of-week), got 4'),
  ('* * * * * *', 'expected 5 fields (minute hour day-of-month month day-of-week), got 6'),
  ('0 0 * * * /usr/bin/backup',
   'expected 5 fields (minute hour day-of-month month day-of-week), got 6'),
  ('@reboot', 'unsupported macro ''@reboot'' (use @yearly, @annually, @monthly, @weekly, '
              '@daily, @midnight or @hourly)'),
  ('@every 5m', 'unsupported macro ''@every 5m'' (use @yearly, @annually, @monthly, @weekly, '
                '@daily, @midnight or @hourly)'),
  ('61 * * * *', 'minute field ''61'' is out of range 0-59'),
  ('* 24 * * *', 'hour field ''24'' is out of range 0-23'),
  ('* * 0 * *', 'day-of-month field ''0'' is out of range 1-31'),
  ('* * 32 * *', 'day-of-month field ''32'' is out of range 1-31'),
  ('* * * 0 *', 'month field ''0'' is out of range 1-12'),
  ('* * * 13 *', 'month field ''13'' is out of range 1-12'),
  ('* * * * 8', 'day-of-week field ''8'' is out of range 0-7'),
  ('0-60 * * * *', 'minute field ''60'' is out of range 0-59'),
  ('99999999999999999999 * * * *', 'minute field ''99999999999999999999'' is out of range 0-59'),
  ('5-2 * * * *', 'minute field range ''5-2'' is reversed (start after end)'),
  ('* * * * sat-sun', 'day-of-week field range ''sat-sun'' is reversed (start after end)'),
  ('*/0 * * * *', 'minute field step ''0'' is out of range 1-59'),
  ('* 1-5/0 * * *', 'hour field step ''0'' is out of range 1-23'),
  ('* */24 * * *', 'hour field step ''24'' is out of range 1-23'),
  ('*/x * * * *', 'minute field step ''x'' is not a number'),
  ('*/ * * * *', 'minute field step '''' is not a number'),
  ('1/2/3 * * * *', 'minute field ''1/2/3'' has more than one step'),
  ('1,,2 * * * *', 'minute field ''1,,2'' has an empty list item'),
  ('1, * * * *', 'minute field ''1,'' has an empty list item'),
  (',1 * * * *', 'minute field '',1'' has an empty list item'),
  ('*-5 * * * *', 'minute field ''*-5'' is not a valid value or range'),
  ('-5 * * * *', 'minute field ''-5'' is not a valid value or range'),
  ('1-2-3 * * * *', 'minute field ''1-2-3'' is not a valid value or range'),
  ('** * * * *', 'minute field ''**'' is not a valid value or range'),
  ('/5 * * * *', 'minute field ''/5'' is not a valid value or range'),
  ('? * * * *', 'minute field ''?'' is not a number'),
  ('1.5 * * * *', 'minute field ''1.5'' is not a number'),
  ('x * * * *', 'minute field ''x'' is not a number'),
  ('* * L * *', 'day-of-month field ''L'' is not a number'),
  ('0 0 $ * *', 'day-of-month field ''$'' is not a number'),
  ('0 0 * * 1#2', 'day-of-week field ''1#2'' is not a number or a name (sun-sat)'),
  ('0 0 * * mon-frid', 'day-of-week field ''frid'' is not a number or a name (sun-sat)'),
  ('0 0 * * monday', 'day-of-week field ''monday'' is not a number or a name (sun-sat)'),
  ('0 0 1 foo *', 'month field ''foo'' is not a number or a name (jan-dec)'),
  ('0 mon * * *', 'hour field ''mon'' is not a number'),
  ('0 0 jan * *', 'day-of-month field ''jan'' is not a number')
) t(expression, message);

-- cron_matches refuses what cron_expression_error reports, whatever the minute.
select throws_ok($$select private.cron_matches('61 * * * *', '2026-07-01 09:00')$$,
  '22023', 'minute field ''61'' is out of range 0-59',
  'cron_matches raises invalid_parameter_value on an invalid expression');
select throws_ok($$select private.cron_matches('0 9 * * 8', '2026-07-01 10:30')$$,
  '22023', 'day-of-week field ''8'' is out of range 0-7',
  'cron_matches raises even when an earlier field already does not match');
select throws_ok($$select private.cron_matches('@reboot', '2026-07-01 09:00')$$,
  '22023', null, 'cron_matches raises on @reboot');

-- ---------------------------------------------------------------------------------------
-- Time zones
-- ---------------------------------------------------------------------------------------
select is(private.cron_timezone_error(tz), message,
  format('time zone %s: %s', coalesce(quote_literal(tz), 'null'), coalesce(message, 'valid')))
from (values
  ('UTC', null),
  ('Europe/Madrid', null),
  ('America/Argentina/Buenos_Aires', null),
  ('Asia/Kolkata', null),
  ('Etc/GMT+3', null),
  ('europe/madrid', 'unknown time zone ''europe/madrid'' (did you mean ''Europe/Madrid''?)'),
  ('Mars/Olympus', 'unknown time zone ''Mars/Olympus'''),
  ('+02:00', 'unknown time zone ''+02:00'''),
  ('CEST', 'unknown time zone ''CEST'''),
  ('localtime', 'unknown time zone ''localtime'''),
  ('', 'time zone is required'),
  (null, 'time zone is required')
) t(tz, message);

-- ---------------------------------------------------------------------------------------
-- The API roles may call them; anon may not
-- ---------------------------------------------------------------------------------------
set local role authenticated;
select is(private.cron_expression_error('61 * * * *'), 'minute field ''61'' is out of range 0-59',
  'authenticated can validate an expression');
select ok(private.cron_matches('0 9 * * *', '2026-07-01 09:00'),
  'authenticated can match an expression');
select is(private.cron_timezone_error('Europe/Madrid'), null,
  'authenticated can validate a time zone');
reset role;

set local role service_role;
select is(private.cron_expression_error('0 9 * * *'), null,
  'service_role can validate an expression');
select ok(private.cron_matches('0 9 * * *', '2026-07-01 09:00'),
  'service_role can match an expression');
select is(private.cron_timezone_error('Mars/Olympus'), 'unknown time zone ''Mars/Olympus''',
  'service_role can validate a time zone');
reset role;

set local role anon;
select throws_ok($$select private.cron_matches('0 9 * * *', '2026-07-01 09:00')$$, '42501', null,
  'anon cannot call cron_matches');
reset role;

select * from finish();
rollback;
