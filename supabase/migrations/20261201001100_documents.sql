-- Documents: files uploaded to Storage (bucket `documents`) with their metadata, and the
-- Gemini runs over a document or a URL (extractions and classifications). Row-level
-- security by org_id and environment, like contacts. The code is in shared/documents/.
--
-- Upload is an action in three phases (shared/platform/app.ts): the row is inserted
-- `pending` with the debits of its automatic processing, the file is stored (and processed)
-- with no transaction open, then the row becomes `stored`. The API shows only stored
-- documents. A process that dies between the phases leaves a pending row (and running
-- processing rows): private.finish_abandoned_document_work() settles them after 10 minutes.

create table public.documents (
  id text primary key default private.new_id('doc'),
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  -- As the caller named it; the same name again makes another document.
  filename text not null check (length(filename) between 1 and 255),
  folder text check (length(folder) between 1 and 200),
  tags text[] not null default '{}',
  -- Inside the bucket, below the environment's folder (shared/platform/storage.ts):
  -- `<org_id>/<document id>/<safe file name>`.
  storage_path text not null check (length(storage_path) between 1 and 1000),
  size_bytes int not null check (size_bytes > 0),
  -- Detected from the bytes, never taken from the file name.
  mime_type text not null check (length(mime_type) between 1 and 100),
  -- Counted from the PDF itself (1 for an image, null for text).
  page_count int check (page_count >= 0),
  -- The latest classification: {type, confidence, subcategory, classification_id}.
  classification jsonb check (jsonb_typeof(classification) = 'object'),
  status text not null default 'pending' check (status in ('pending', 'stored')),
  created_at timestamptz not null default now(),
  unique (org_id, environment, id),
  unique (storage_path)
);
create index documents_list_idx
  on public.documents (org_id, environment, created_at desc, id desc) where status = 'stored';
create index documents_tags_idx on public.documents using gin (tags);
create index documents_pending_idx on public.documents (created_at) where status = 'pending';

alter table public.documents enable row level security;
revoke all on public.documents from anon, authenticated;
grant select, insert, update, delete on public.documents to authenticated;
create policy documents_own_org_env on public.documents for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- One row per Gemini run over a document: `extract` (ids ext_…) or `classify` (cls_…),
-- inserted `running` in the transaction that debits its credits (the row's id is the
-- debit's reference), completed or failed (refunded) after the call.
create table public.document_extractions (
  id text primary key,
  org_id text not null default private.request_org_id()
    references public.organizations (id) on delete cascade,
  environment text not null default private.request_environment()
    check (environment in ('live', 'test')),
  operation text not null check (operation in ('extract', 'classify')),
  -- The stored document processed; null when it came from `document_url` (or was deleted).
  document_id text,
  document_url text check (length(document_url) between 1 and 2048),
  -- extract: the type asked for and the fields asked for; classify: null and the categories.
  document_type text check (length(document_type) between 1 and 100),
  fields text[] not null default '{}',
  categories text[] not null default '{}',
  language text check (length(language) between 2 and 35),
  -- The file as read (from Storage or the URL): detected type, size and PDF page count.
  mime_type text,
  size_bytes int check (size_bytes >= 0),
  page_count int check (page_count >= 0),
  -- Gemini's answer: extract's `extracted` object, or classify's whole answer.
  extracted jsonb,
  confidence double precision check (confidence between 0 and 1),
  model text not null,
  -- Credits charged: the debit while running and when completed, 0 once refunded.
  credits int not null default 0 check (credits >= 0),
  prompt_tokens int not null default 0 check (prompt_tokens >= 0),
  output_tokens int not null default 0 check (output_tokens >= 0),
  total_tokens int not null default 0 check (total_tokens >= 0),
  status text not null default 'running' check (status in ('running', 'completed', 'failed')),
  -- {code, message, details?} of a failed run.
  error jsonb,
  -- A workflow step's `<instance>.<step>`: a retried step finds its run instead of paying
  -- again. Null for API calls.
  request_key text check (length(request_key) between 1 and 300),
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  unique (org_id, environment, request_key),
  -- A run's document is one of the same organization and environment; deleting the
  -- document keeps the run (its credits and answer) without it.
  foreign key (org_id, environment, document_id)
    references public.documents (org_id, environment, id) on delete set null (document_id),
  check ((status = 'running') = (completed_at is null)),
  check ((id like 'ext\_%') = (operation = 'extract'))
);
create index document_extractions_document_idx
  on public.document_extractions (document_id) where document_id is not null;
create index document_extractions_running_idx
  on public.document_extractions (created_at) where status = 'running';

alter table public.document_extractions enable row level security;
revoke all on public.document_extractions from anon, authenticated;
grant select, insert, update on public.document_extractions to authenticated;
create policy document_extractions_own_org_env on public.document_extractions
  for all to authenticated
  using (org_id = (select private.request_org_id())
         and environment = (select private.request_environment()))
  with check (org_id = (select private.request_org_id())
              and environment = (select private.request_environment()));

-- Sandbox rows go after 24 hours with the rest. Their files are under `test/` in the
-- bucket and go by purgeExpiredSandboxFiles (shared/platform/storage.ts), which removes
-- every test/ object older than 24 hours through the Storage API.
insert into private.sandbox_tables (table_name, purge_order) values
  ('public.document_extractions', 26),
  ('public.documents', 36);

-- ---------------------------------------------------------------------------------------
-- Work left half done by a process that died between the phases (a crash, a deploy). A
-- Storage upload and a Gemini call end well within 10 minutes (timeouts and retries
-- included), so after that:
--   - a pending document whose file reached Storage becomes stored; one whose file did not
--     is deleted;
--   - a running extraction or classification is failed, its credits refunded
--     (refund_credits gives a debit back at most once) and document.processed written, as
--     a failure would have.
-- ---------------------------------------------------------------------------------------

create function private.finish_abandoned_document_work(
  p_older_than interval default interval '10 minutes'
) returns int
language plpgsql volatile
set search_path = ''
as $$
declare
  run record;
  settled int := 0;
  abandoned jsonb := jsonb_build_object(
    'code', 'PROCESSING_ABANDONED',
    'message', 'The processing did not finish (the server stopped during the model call); its credits were refunded.');
begin
  for run in
    select e.id, e.org_id, e.environment
    from public.document_extractions e
    where e.status = 'running' and e.created_at < now() - p_older_than
    order by e.created_at
    for update skip locked
  loop
    -- refund_credits acts for the organization and environment in the claims.
    perform set_config('request.jwt.claims', jsonb_build_object(
      'org_id', run.org_id, 'environment', run.environment)::text, true);
    perform private.refund_credits(run.id);
    update public.document_extractions
    set status = 'failed', credits = 0, error = abandoned, completed_at = now()
    where id = run.id;
    insert into public.events (org_id, environment, type, data)
    select e.org_id, e.environment, 'document.processed', jsonb_build_object(
      'operation', e.operation,
      (case e.operation when 'extract' then 'extraction_id' else 'classification_id' end), e.id,
      'document_id', e.document_id, 'status', 'failed', 'credits_consumed', 0,
      'processed_at', to_char(e.completed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'error', abandoned)
    from public.document_extractions e where e.id = run.id;
    settled := settled + 1;
  end loop;
  perform set_config('request.jwt.claims', '', true);

  with pending as (
    select d.id, d.environment || '/' || d.storage_path as object_name
    from public.documents d
    where d.status = 'pending' and d.created_at < now() - p_older_than
    for update skip locked
  ), kept as (
    update public.documents d set status = 'stored'
    from pending p
    where d.id = p.id and exists (
      select from storage.objects o where o.bucket_id = 'documents' and o.name = p.object_name)
    returning d.id
  ), dropped as (
    delete from public.documents d
    using pending p
    where d.id = p.id and d.id not in (select id from kept)
    returning d.id
  )
  select settled + (select count(*) from kept) + (select count(*) from dropped) into settled;
  return settled;
end
$$;
revoke execute on function private.finish_abandoned_document_work(interval) from public;

select cron.schedule('bivelio-finish-abandoned-document-work', '* * * * *',
  'select private.finish_abandoned_document_work()');
