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

-- The workflows the spec's examples name: Acme's client onboarding (7 steps, manual) and
-- monthly invoicing (4 steps, cron on the 1st at 09:00 Madrid time).
insert into public.workflows (id, org_id, environment, name, description, status, trigger_type,
                              cron_expression, timezone, created_at, updated_at)
values
  ('wf_a1b2c3d4', 'org_demo_acme', 'live', 'Client onboarding',
   'Automated welcome and setup workflow', 'active', 'manual', null, null,
   '2026-03-15T10:30:00Z', '2026-04-01T14:22:00Z'),
  ('wf_e5f6g7h8', 'org_demo_acme', 'live', 'Monthly invoicing',
   'Generates and sends invoices on the 1st of each month', 'active', 'cron', '0 9 1 * *',
   'Europe/Madrid', '2026-02-20T09:00:00Z', '2026-03-28T16:45:00Z');

insert into public.workflow_versions (workflow_id, version, org_id, environment, steps) values
  ('wf_a1b2c3d4', 1, 'org_demo_acme', 'live', $json$[
    {"id": "create_client", "type": "create_contact",
     "config": {"type": "company", "name": "{{input.client_name}}",
                "email": "{{input.client_email}}", "tags": ["client"],
                "custom_fields": {"plan": "{{input.plan}}"}}},
    {"id": "plan_check", "type": "condition",
     "config": {"value": "{{input.plan}}", "not_equals": "pro", "then": "welcome"}},
    {"id": "pro_setup", "type": "update_contact",
     "config": {"id": "{{steps.create_client.output.id}}", "tags": ["client", "pro"]}},
    {"id": "welcome", "type": "set",
     "config": {"values": {"welcome_to": "{{input.client_email}}"}}},
    {"id": "follow_up_delay", "type": "delay", "config": {"seconds": 2}},
    {"id": "mark_onboarded", "type": "update_contact",
     "config": {"id": "{{steps.create_client.output.id}}",
                "custom_fields": {"onboarded": true}}},
    {"id": "summary", "type": "set",
     "config": {"values": {"client_configured": true,
                           "contact_id": "{{steps.create_client.output.id}}"}}}
  ]$json$),
  ('wf_e5f6g7h8', 1, 'org_demo_acme', 'live', $json$[
    {"id": "period", "type": "set",
     "config": {"values": {"period_start": "{{input.scheduled_for}}"}}},
    {"id": "has_period", "type": "condition",
     "config": {"value": "{{steps.period.output.period_start}}", "exists": false, "then": "end"}},
    {"id": "prepare", "type": "set",
     "config": {"values": {"invoicing_for": "{{steps.period.output.period_start}}"}}},
    {"id": "done", "type": "set", "config": {"values": {"invoices_prepared": true}}}
  ]$json$);

-- AI credits: every organization starts with its plan's monthly allowance (the trigger in
-- 20261201000900_credits.sql); the demo organizations get 100,000 more for local use, as a
-- `grant` in their ledger.
select private.grant_credits(id, 100000, 'demo seed')
from public.organizations where id in ('org_demo_acme', 'org_demo_bistro');

-- AI agents: each demo organization has an intent classifier and an email drafter (the
-- spec's list example). Acme's carry the spec's ids, and the classifier's output schema is
-- the spec's invoke output, so the spec's invoke example works as printed (with the local
-- Gemini stand-in, whose answers take each enum's first value: intent "plan_upgrade").
insert into public.agents (id, org_id, environment, name, description, category, model,
                           instructions, input_schema, output_schema, temperature)
select demo.id, demo.org_id, 'live', kind.name, kind.description, kind.category,
       'gemini-2.5-flash', kind.instructions, kind.input_schema::jsonb,
       kind.output_schema::jsonb, kind.temperature
from (values
  ('ag_classifier_01', 'org_demo_acme', 'classifier'),
  ('ag_email_draft', 'org_demo_acme', 'email'),
  ('ag_bistro_classifier', 'org_demo_bistro', 'classifier'),
  ('ag_bistro_email_draft', 'org_demo_bistro', 'email')
) as demo (id, org_id, kind)
join (values
  ('classifier', 'Intent classifier', 'Analyzes incoming text and classifies user intent', 'nlp',
   'Classify the intent of the customer''s text. Use the context when it is given. Answer with '
   'the intent, your confidence between 0 and 1, the action the team should take, and the '
   'entities you found (the target plan, the client id).',
   $json${"type": "object", "required": ["text"],
          "properties": {"text": {"type": "string", "minLength": 1},
                         "context": {"type": "object"}}}$json$,
   $json${"type": "object",
          "required": ["intent", "confidence", "suggested_action", "extracted_entities"],
          "properties": {
            "intent": {"type": "string", "enum": ["plan_upgrade", "plan_downgrade",
              "cancellation", "billing_question", "support_request", "other"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "suggested_action": {"type": "string", "enum": ["route_to_sales",
              "route_to_support", "route_to_billing", "reply_automatically", "no_action"]},
            "extracted_entities": {"type": "object", "properties": {
              "target_plan": {"type": "string", "enum": ["enterprise", "pro", "starter"]},
              "client_id": {"type": "string"}}}},
          "propertyOrdering": ["intent", "confidence", "suggested_action",
                               "extracted_entities"]}$json$,
   0.1),
  ('email', 'Email drafter', 'Generates draft replies for incoming emails', 'communication',
   'Draft a reply to the incoming email: friendly, short, in the language of the email. Do '
   'not promise prices or dates that are not in the email or its context.',
   $json${"type": "object", "required": ["email"],
          "properties": {"email": {"type": "string", "minLength": 1},
                         "sender_name": {"type": "string"},
                         "tone": {"type": "string", "enum": ["friendly", "formal"]},
                         "context": {"type": "object"}}}$json$,
   $json${"type": "object", "required": ["subject", "body", "tone"],
          "properties": {"subject": {"type": "string"},
                         "body": {"type": "string"},
                         "tone": {"type": "string", "enum": ["friendly", "formal"]}},
          "propertyOrdering": ["subject", "body", "tone"]}$json$,
   0.7)
) as kind (kind, name, description, category, instructions, input_schema, output_schema,
           temperature) on kind.kind = demo.kind;

-- Invoices: the spec's listed invoice (INV-2026-042, Company ABC, pending) and Acme's live
-- counter for 2026 at 42, so the spec's create example numbers its invoice INV-2026-043.
insert into public.invoices (id, org_id, environment, type, number, status, client_id,
                             client_name, currency, issue_date, due_date, subtotal, tax, total)
values ('inv_c6d7e8f9', 'org_demo_acme', 'live', 'issued', 'INV-2026-042', 'pending',
        'ct_abc123', 'Company ABC S.L.', 'EUR', '2026-04-01', '2026-04-30', 5000.00, 1050.00,
        6050.00);
insert into public.invoice_lines (invoice_id, position, org_id, environment, description,
                                  quantity, unit_price, tax_rate, subtotal, tax, total)
values ('inv_c6d7e8f9', 0, 'org_demo_acme', 'live', 'BiVelio Pro License - April 2026', 10,
        500.00, 21, 5000.00, 1050.00, 6050.00);
insert into private.invoice_counters (org_id, environment, year, last_number)
values ('org_demo_acme', 'live', 2026, 42);
