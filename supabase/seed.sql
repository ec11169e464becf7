-- Demo data for the local stack (and a Supabase development project): two organizations,
-- one user each, and a few contacts. Passwords are listed in local/demo.ts and printed by
-- `deno task start`. API keys are minted by the start script, since only their hashes
-- can be stored.

insert into public.organizations (id, name, plan) values
  ('org_demo_acme', 'Acme Robotics', 'pro'),
  ('org_demo_bistro', 'Bistro Verde', 'starter');

insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data)
values
  ('00000000-0000-4000-a000-00000000ac01', 'authenticated', 'authenticated', 'ana@acme.example',
   extensions.crypt('acme-demo-password', extensions.gen_salt('bf')), now(),
   '{"provider":"email","providers":["email"]}', '{"full_name":"Ana Acme"}'),
  ('00000000-0000-4000-a000-00000000b001', 'authenticated', 'authenticated', 'leo@bistro.example',
   extensions.crypt('bistro-demo-password', extensions.gen_salt('bf')), now(),
   '{"provider":"email","providers":["email"]}', '{"full_name":"Leo Bistro"}');

insert into public.organization_members (org_id, user_id, role) values
  ('org_demo_acme', '00000000-0000-4000-a000-00000000ac01', 'owner'),
  ('org_demo_bistro', '00000000-0000-4000-a000-00000000b001', 'owner');

-- The ids the spec's examples use, so they can be sent verbatim against Acme's live data.
insert into public.contacts (id, org_id, environment, type, name, email, phone, company_id, tags,
                             custom_fields)
values
  ('ct_abc123', 'org_demo_acme', 'live', 'company', 'Company ABC S.L.', 'contact@companyabc.com',
   '+34 612 345 678', null, '{client,active,pro}', '{"sector":"technology","tax_id":"B12345678"}'),
  ('ct_def456', 'org_demo_acme', 'live', 'person', 'Maria Garcia', 'maria@example.com',
   '+34 600 111 222', 'ct_abc123', '{lead,inbound}',
   '{"source":"website","interest":"plan_enterprise"}'),
  ('ct_demo_xyz', 'org_demo_acme', 'live', 'company', 'Company XYZ Ltd.', 'hello@xyz.example',
   null, null, '{prospect}', '{"sector":"retail"}'),
  ('ct_demo_bistro1', 'org_demo_bistro', 'live', 'person', 'Carla Ruiz', 'carla@example.com',
   '+34 611 222 333', null, '{client}', '{}');
