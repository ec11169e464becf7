-- The Storage buckets the API keeps files in, private (read only through the service role
-- and signed URLs). Created here rather than by code at start-up so a deploy
-- (`supabase db push`) makes them with everything else; the local stack's bootstrap adds a
-- minimal storage.buckets for this insert and its Storage emulator reads them from there.
--   documents: what /v1/documents uploads (PDFs and images), at most 20 MiB each;
--   invoices:  the PDFs invoices generate, at most 10 MiB each.
-- A project's global upload limit (50 MiB by default) caps these on Supabase too.
-- Objects are kept under "live/" or "test/" (shared/platform/storage.ts): sandbox files are
-- never in the same folder as live ones.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values
  ('documents', 'documents', false, 20971520, null),
  ('invoices', 'invoices', false, 10485760, array['application/pdf'])
on conflict (id) do update
  set public = excluded.public,
    file_size_limit = excluded.file_size_limit,
    allowed_mime_types = excluded.allowed_mime_types;
