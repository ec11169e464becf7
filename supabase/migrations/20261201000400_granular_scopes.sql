-- Granular API key scopes. Besides the spec's broad `read`, `write` and `admin` (that level
-- in every group), a key may hold one group's level: `contacts:read`, `workflows:write`,
-- `webhooks:admin`. Levels include the ones below them (admin ⊇ write ⊇ read). The API
-- checks them on every call (shared/platform/principal.ts) and accepts only the groups that exist;
-- the database checks their shape, so a new group needs no migration.

create function private.api_key_scopes_valid(p_scopes text[]) returns boolean
language sql immutable
set search_path = ''
as $$
  select coalesce(bool_and(s ~ '^([a-z][a-z0-9_-]{0,49}:)?(read|write|admin)$'), false)
  from unnest(p_scopes) s
$$;

-- Publishable keys end up in browsers: read scopes only, broad or of a group.
create function private.api_key_scopes_read_only(p_scopes text[]) returns boolean
language sql immutable
set search_path = ''
as $$
  select coalesce(bool_and(s ~ '^([a-z][a-z0-9_-]{0,49}:)?read$'), false)
  from unnest(p_scopes) s
$$;

-- Check constraints run with the inserting role's rights: the API's (authenticated) and the
-- service connection's; not PUBLIC, the default a CREATE FUNCTION grants.
revoke execute on function private.api_key_scopes_valid(text[]),
  private.api_key_scopes_read_only(text[]) from public;
grant execute on function private.api_key_scopes_valid(text[]),
  private.api_key_scopes_read_only(text[]) to authenticated, service_role;

alter table public.api_keys
  drop constraint api_keys_scopes_check,
  add constraint api_keys_scopes_check
    check (cardinality(scopes) > 0 and private.api_key_scopes_valid(scopes)),
  -- Was: publishable keys are live and hold exactly {read}.
  drop constraint api_keys_check,
  add constraint api_keys_publishable_check
    check (key_type = 'secret'
           or (environment = 'live' and private.api_key_scopes_read_only(scopes)));

-- The webhooks' policies and functions let an API key administer webhooks when its claims
-- (set by the API from the key's row, never by a caller) hold `admin` or now
-- `webhooks:admin`; signed-in owners and admins as before.
create or replace function private.request_can_admin() returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce((auth.jwt() -> 'scopes') ?| array['admin', 'webhooks:admin'], false)
    or private.is_org_admin()
$$;
