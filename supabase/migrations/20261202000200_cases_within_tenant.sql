-- A case and its links stay within the case's organization and environment, in the database
-- too (supabase/tests/20_cases.test.sql). 20261201001500 tied cases.contact_id and
-- case_links.case_id to ids only, and links to nothing: foreign keys are checked without
-- row-level security, so the API role of one organization could store a case of its own
-- with another organization's contact, a link on another organization's case, or a link to
-- another organization's (or the sandbox's) invoice, document or message. The API checks
-- these under RLS before writing; now the database refuses them as well.

-- The contact: one of the case's organization and environment; deleting it keeps the case.
alter table public.cases add unique (org_id, environment, id);
alter table public.cases drop constraint cases_contact_id_fkey;
alter table public.cases add foreign key (org_id, environment, contact_id)
  references public.contacts (org_id, environment, id) on delete set null (contact_id);

-- The link's case: of the link's organization and environment.
alter table public.case_links drop constraint case_links_case_id_fkey;
alter table public.case_links add foreign key (org_id, environment, case_id)
  references public.cases (org_id, environment, id) on delete cascade;

-- The linked record: not a foreign key (each kind is another group's table, and a record
-- deleted later leaves a link the API reports as gone), so checked when the link is written.
-- As the caller (not security definer): a record it cannot see is not there for it either,
-- so the check never tells whether another organization's id exists.
create function private.case_link_target_in_tenant() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  found boolean;
begin
  found := case new.kind
    when 'document' then exists (
      select from public.documents t
      where t.id = new.target_id and t.org_id = new.org_id and t.environment = new.environment)
    when 'invoice' then exists (
      select from public.invoices t
      where t.id = new.target_id and t.org_id = new.org_id and t.environment = new.environment)
    when 'message' then exists (
      select from public.messages t
      where t.id = new.target_id and t.org_id = new.org_id and t.environment = new.environment)
    else true -- an unknown kind is for the kind check to refuse
  end;
  if not found then
    raise exception 'the % % is not one of the case''s organization and environment',
      new.kind, new.target_id using errcode = '23503';
  end if;
  return new;
end
$$;
revoke execute on function private.case_link_target_in_tenant() from public;

create trigger case_links_target_in_tenant
  before insert or update of kind, target_id, org_id, environment on public.case_links
  for each row execute function private.case_link_target_in_tenant();
