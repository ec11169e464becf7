/**
 * The demo organizations that supabase/seed.sql creates, with their users' passwords (the
 * seed stores only bcrypt hashes) and the API keys the start script mints for each.
 */
export const DEMO_ORGS = [
  {
    org_id: "org_demo_acme",
    name: "Acme Robotics",
    plan: "pro",
    user: { email: "ana@acme.example", password: "acme-demo-password" },
  },
  {
    org_id: "org_demo_bistro",
    name: "Bistro Verde",
    plan: "starter",
    user: { email: "leo@bistro.example", password: "bistro-demo-password" },
  },
] as const;

/** The keys every demo organization gets, named as in .bivelio/local.json. */
export const DEMO_KEYS = {
  live_secret: { environment: "live", type: "secret", scopes: ["read", "write", "admin"] },
  live_read: { environment: "live", type: "secret", scopes: ["read"] },
  test_secret: { environment: "test", type: "secret", scopes: ["read", "write", "admin"] },
  // A publishable key ends up in browsers: only the reads a public page needs, never contacts.
  live_publishable: { environment: "live", type: "publishable", scopes: ["workflows:read"] },
} as const;
