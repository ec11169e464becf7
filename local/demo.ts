import postgres from "postgres";
import { openSecrets } from "../shared/platform/secrets.ts";
import { DEMO_BOTS, KNOWN_CHATS } from "./stand-ins/telegram.ts";
import { WHATSAPP_STAND_IN_DEMO_NUMBERS } from "./stand-ins/whatsapp.ts";

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

// ---------------------------------------------------------------------------------------
// Demo integrations: WhatsApp, Telegram and email connected to the local stand-ins
// ---------------------------------------------------------------------------------------

/** What .bivelio/local.json lists per demo organization, to deliver inbound updates by hand. */
export interface DemoIntegrations {
  whatsapp: {
    phone_number_id: string;
    display_phone_number: string;
    inbound_url: string;
    app_secret: string;
    verify_token: string;
  };
  telegram: { bot_username: string; inbound_url: string; secret_token: string; chat_id: number };
  email: { address: string; inbound_url: string; signing_secret: string };
}

interface DemoStandIns {
  apiUrl: string;
  dbUrl: string;
  secretsKey: string;
  whatsappBaseUrl: string;
  telegramBaseUrl: string;
  mail: {
    smtp_host: string;
    smtp_port: number;
    http_url: string;
    username: string;
    password: string;
  };
}

/** The demo credentials of the n-th demo organization (fake: they reach only the stand-ins). */
function demoCredentials(n: number, orgId: string, mail: DemoStandIns["mail"]) {
  const number = WHATSAPP_STAND_IN_DEMO_NUMBERS[n];
  const slug = orgId.replace(/^org_demo_/, "");
  return {
    whatsapp: {
      phone_number_id: number.phone_number_id,
      access_token: number.access_token,
      app_secret: `demo-app-secret-${slug}`,
      verify_token: `demo-verify-token-${slug}`,
      display_phone_number: number.display_phone_number,
    },
    telegram: { bot_token: DEMO_BOTS[n].token },
    email: {
      host: mail.smtp_host,
      port: mail.smtp_port,
      secure: false,
      username: mail.username,
      password: mail.password,
      from: `${DEMO_ORGS[n].name} <hello@${slug}.example>`,
    },
  };
}

/** Calls `integrations/<action>` with a demo key: the demo connects through the API itself. */
export async function callIntegrations(
  apiUrl: string,
  key: string,
  action: string,
  data: unknown,
) {
  const response = await fetch(`${apiUrl}/v1/integrations/${action}`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ action, data }),
  });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(`integrations/${action}: ${response.status} ${JSON.stringify(body.error)}`);
  }
  return body.data;
}

/**
 * Connects each demo organization's WhatsApp number, Telegram bot and mailbox at the
 * stand-ins, in live and in the sandbox, through the API itself (so the credentials are
 * sealed by the functions with the stack's key). On later starts the integrations are
 * updated with the same credentials: the Telegram stand-in forgets its webhooks when it
 * stops, and `update` sets them again. Returns what local.json lists (the live ones).
 */
export async function connectDemoIntegrations(
  orgs: { org_id: string; keys: { live_secret: string; test_secret: string } }[],
  standIns: DemoStandIns,
): Promise<Record<string, DemoIntegrations>> {
  // The receivers' secrets are made by the functions and stored sealed: opened here, with
  // the stack's own key, only to list them in local.json for a local tester.
  Deno.env.set("BIVELIO_SECRETS_KEY", standIns.secretsKey);
  const sql = postgres(standIns.dbUrl, { max: 1, onnotice: () => {} });
  const listed: Record<string, DemoIntegrations> = {};
  try {
    for (const [n, org] of orgs.entries()) {
      const credentials = demoCredentials(n, org.org_id, standIns.mail);
      const live: Record<string, { id: string; inbound_url: string }> = {};
      for (const key of [org.keys.live_secret, org.keys.test_secret]) {
        const { integrations } = await callIntegrations(standIns.apiUrl, key, "list", {});
        for (const provider of ["whatsapp", "telegram", "email"] as const) {
          const existing = integrations.find((i: { provider: string }) => i.provider === provider);
          const integration = existing
            ? await callIntegrations(standIns.apiUrl, key, "update", {
              integration_id: existing.id,
              credentials: credentials[provider],
            })
            : await callIntegrations(standIns.apiUrl, key, "connect", {
              provider,
              credentials: credentials[provider],
            });
          if (key === org.keys.live_secret) live[provider] = integration;
        }
      }
      const secretsOf = async <T>(integrationId: string): Promise<T> => {
        const [row] = await sql<{ sealed_secrets: string }[]>`
          select r.sealed_secrets from public.integrations i
          join private.receivers r on r.id = i.receiver_id where i.id = ${integrationId}
        `;
        return await openSecrets<T>(row.sealed_secrets);
      };
      const telegramSecrets = await secretsOf<{ secret_token: string }>(live.telegram.id);
      const emailSecrets = await secretsOf<{ signing_secret: string }>(live.email.id);
      const address = `hello@${org.org_id.replace(/^org_demo_/, "")}.example`;

      // The stand-ins deliver to the live receivers: WhatsApp's sent/delivered callbacks
      // after each message, and email to the organization's address.
      await postJson(`${standIns.whatsappBaseUrl}/_standin/numbers`, {
        ...WHATSAPP_STAND_IN_DEMO_NUMBERS[n],
        webhook: {
          receiver_url: live.whatsapp.inbound_url,
          app_secret: credentials.whatsapp.app_secret,
        },
      });
      await postJson(`${standIns.mail.http_url}/_standin/mailboxes`, {
        address,
        receiver_url: live.email.inbound_url,
        secret: emailSecrets.signing_secret,
      });

      listed[org.org_id] = {
        whatsapp: {
          phone_number_id: credentials.whatsapp.phone_number_id,
          display_phone_number: credentials.whatsapp.display_phone_number,
          inbound_url: live.whatsapp.inbound_url,
          app_secret: credentials.whatsapp.app_secret,
          verify_token: credentials.whatsapp.verify_token,
        },
        telegram: {
          bot_username: DEMO_BOTS[n].username,
          inbound_url: live.telegram.inbound_url,
          secret_token: telegramSecrets.secret_token,
          chat_id: KNOWN_CHATS[0].id,
        },
        email: {
          address,
          inbound_url: live.email.inbound_url,
          signing_secret: emailSecrets.signing_secret,
        },
      };
    }
  } finally {
    await sql.end();
  }
  return listed;
}

async function postJson(url: string, body: unknown) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${url}: ${response.status} ${text}`);
}
