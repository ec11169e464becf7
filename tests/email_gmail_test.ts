/**
 * The email channel's Gmail transport through the API, against the Google stand-in
 * (local/stand-ins/google.ts: OAuth's token endpoint and Gmail API v1): connect with OAuth
 * credentials, integrations/test (token refresh + users.getProfile), messages/send with text
 * and HTML, invoices/send with the PDF attached arriving decoded, invalid_grant and Gmail's
 * own errors as 502 INTEGRATION_ERROR with the message stored failed, sandbox keys never
 * reaching the stand-in, and the refresh token and client secret never in a response.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { expectError } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test } from "./helpers/stack.ts";

const GOOGLE = stack.google.base_url;

async function standIn(path: string, body?: unknown) {
  const response = await fetch(`${GOOGLE}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

interface GmailAccount {
  email: string;
  credentials: {
    transport: "gmail";
    client_id: string;
    client_secret: string;
    refresh_token: string;
    from: string;
  };
}

/** An account the stand-in knows, and the email credentials of it. */
async function newGmailAccount(): Promise<GmailAccount> {
  const id = crypto.randomUUID().slice(0, 8);
  const email = `shop-${id}@gmail.example`;
  const refreshToken = `1//gmail-refresh-${crypto.randomUUID()}`;
  await standIn("/_standin/accounts", { refresh_token: refreshToken, email });
  return {
    email,
    credentials: {
      transport: "gmail",
      client_id: `${id}.apps.googleusercontent.com`,
      client_secret: `GOCSPX-secret-${crypto.randomUUID()}`,
      refresh_token: refreshToken,
      from: `Test Shop <${email}>`,
    },
  };
}

interface RecordedRequest {
  method: string;
  path: string;
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** What the stand-in received for the account (token grants included). */
const requestsOf = async (account: GmailAccount): Promise<RecordedRequest[]> =>
  (await standIn(`/_standin/requests?account=${encodeURIComponent(account.email)}`)).requests;

const sendsOf = async (account: GmailAccount) =>
  (await requestsOf(account)).filter((r) => r.path === "/gmail/v1/users/me/messages/send");

/** integrations/connect's body (one place for the field naming the kind of integration). */
const connectBody = (credentials: unknown) => ({ provider: "email", credentials });

async function connectGmail(key: string, account: GmailAccount) {
  const response = await api("integrations/connect", {
    action: "connect",
    data: connectBody(account.credentials),
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response;
}

const send = (key: string, to: string, message: Record<string, unknown>) =>
  api("messages/send", {
    action: "send",
    data: { channel: "email", to, message: { type: "text", ...message } },
  }, { key });

const uniqueAddress = (label: string) =>
  `${label}-${crypto.randomUUID().slice(0, 8)}@customer.example`;

/** No secret of the account's credentials anywhere in `body`. */
function assertNoSecrets(body: unknown, account: GmailAccount) {
  const text = JSON.stringify(body);
  assert.ok(!text.includes(account.credentials.refresh_token), "refresh token answered");
  assert.ok(!text.includes(account.credentials.client_secret), "client secret answered");
}

// ---------------------------------------------------------------------------------------

test("gmail: connect and test (token refresh + profile); the public part names the account, no secret answered", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const account = await newGmailAccount();
  const connected = await connectGmail(key, account);
  const integration = connected.body.data;
  assert.deepEqual(integration.public, {
    transport: "gmail",
    from: account.email,
    from_name: "Test Shop",
    account_email: null,
  });
  assertNoSecrets(connected.body, account);
  const [row] = await db`select sealed_credentials from public.integrations
    where id = ${integration.id}`;
  assert.ok(!row.sealed_credentials.includes(account.credentials.refresh_token), "sealed");

  const tested = await api("integrations/test", {
    action: "test",
    data: { integration_id: integration.id },
  }, { key });
  assert.equal(tested.status, 200, JSON.stringify(tested.body));
  assert.equal(tested.body.data.integration.public.account_email, account.email);
  assertNoSecrets(tested.body, account);
  const listed = await api("integrations/list", { action: "list", data: {} }, { key });
  assertNoSecrets(listed.body, account);

  const requests = await requestsOf(account);
  assert.deepEqual(
    requests.map((r) => `${r.method} ${r.path} ${r.status}`),
    ["POST /token 200", "GET /gmail/v1/users/me/profile 200"],
  );
  assert.equal(requests[0].body.client_id, account.credentials.client_id);
});

test("gmail: messages/send text and HTML goes to users.messages.send as nodemailer's MIME; Gmail's id answered", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const account = await newGmailAccount();
  await connectGmail(key, account);
  const to = uniqueAddress("maria");
  const response = await send(key, to, {
    subject: "Your order",
    body: "Hello, your order has shipped.",
    html: "<p>Hello, your order has <b>shipped</b>.</p>",
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assertNoSecrets(response.body, account);
  const [sent] = await sendsOf(account);
  assert.equal(sent.status, 200);
  assert.equal(response.body.data.email_message_id, sent.body.id);
  assert.match(sent.body.id, /^[0-9a-f]{16}$/);
  const { message } = sent.body;
  assert.deepEqual(message.from, { address: account.email, name: "Test Shop" });
  assert.deepEqual(message.to, [to]);
  assert.equal(message.subject, "Your order");
  assert.equal(message.text.trim(), "Hello, your order has shipped.");
  assert.equal(message.html, "<p>Hello, your order has <b>shipped</b>.</p>");
  assert.match(message.message_id, /^<[^<>@\s]+@gmail\.example>$/);

  // Handed to the mail catcher, beside the SMTP mail.
  const caught = await (await fetch(`${stack.mail.http_url}/messages?to=${to}`)).json();
  assert.equal(caught.messages.length, 1);
  assert.equal(caught.messages[0].subject, "Your order");
  assert.equal(caught.messages[0].authenticated_user, `gmail:${account.email}`);

  const [row] = await db`select status, provider_message_id from public.messages
    where id = ${response.body.data.message_id}`;
  assert.deepEqual({ ...row }, { status: "sent", provider_message_id: sent.body.id });
});

test("gmail: invoices/send attaches the PDF, which arrives decoded at Gmail", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const account = await newGmailAccount();
  await connectGmail(key, account);
  const to = uniqueAddress("billing");
  const client = await api("contacts/create", {
    action: "create",
    data: { name: "Mailed Client", type: "company", email: to },
  }, { key });
  assert.equal(client.status, 200, JSON.stringify(client.body));
  const draft = await api("invoices/create", {
    action: "create",
    data: {
      client_id: client.body.data.id,
      line_items: [{ description: "Work", quantity: 1, unit_price: 100, tax_rate: 21 }],
    },
  }, { key });
  assert.equal(draft.status, 200, JSON.stringify(draft.body));
  const sent = await api("invoices/send", {
    action: "send",
    data: { id: draft.body.data.id },
  }, { key });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal(sent.body.data.email.status, "sent");

  const [gmailSend] = await sendsOf(account);
  const [attachment] = gmailSend.body.message.attachments;
  assert.equal(attachment.filename, `${draft.body.data.number}.pdf`);
  assert.equal(attachment.content_type, "application/pdf");
  const pdf = Buffer.from(attachment.content_base64, "base64");
  assert.equal(pdf.subarray(0, 5).toString("latin1"), "%PDF-");
  assert.equal(attachment.size, pdf.byteLength);
  // The same bytes as the invoice's own PDF.
  const own = await fetch(`${stack.api_url}/v1/invoices/pdf`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ action: "pdf", data: { id: draft.body.data.id } }),
  });
  assert.equal(own.status, 200);
  assert.deepEqual(new Uint8Array(await own.arrayBuffer()), new Uint8Array(pdf));
});

test("gmail: a revoked grant (invalid_grant) is 502 INTEGRATION_ERROR, not retryable, the message stored failed", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const account = await newGmailAccount();
  const integration = (await connectGmail(key, account)).body.data;
  await standIn("/_standin/revoke", { refresh_token: account.credentials.refresh_token });

  const response = await send(key, uniqueAddress("ana"), { subject: "Hi", body: "Hello" });
  expectError(response, 502, "INTEGRATION_ERROR");
  const details = response.body.error.details;
  assert.equal(details.provider_code, "invalid_grant");
  assert.equal(details.retryable, false);
  assert.match(details.provider_message, /invalid_grant.*new refresh token/);
  assertNoSecrets(response.body, account);
  const [row] = await db`select status from public.messages where org_id = ${org.orgId}`;
  assert.equal(row.status, "failed");
  assert.equal((await sendsOf(account)).length, 0, "nothing reached Gmail's send");
  // Every send would fail the same way: the integration shows it broken, with Google's code.
  const shown = await api("integrations/get", {
    action: "get",
    data: { integration_id: integration.id },
  }, { key });
  assert.equal(shown.body.data.status, "broken");
  assert.equal(shown.body.data.error.provider_code, "invalid_grant");

  const tested = await api("integrations/test", {
    action: "test",
    data: { integration_id: integration.id },
  }, { key });
  expectError(tested, 502, "INTEGRATION_ERROR");
  assert.equal(tested.body.error.details.provider_code, "invalid_grant");
  assertNoSecrets(tested.body, account);
});

test("gmail: Gmail's own error is 502 with its status and message; a quota error is retryable", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const account = await newGmailAccount();
  await connectGmail(key, account);
  await standIn("/_standin/gmail_errors", {
    refresh_token: account.credentials.refresh_token,
    errors: [
      { code: 400, status: "FAILED_PRECONDITION", message: "Mail service not enabled" },
      { code: 429, status: "RESOURCE_EXHAUSTED", message: "User-rate limit exceeded." },
    ],
  });
  const refused = await send(key, uniqueAddress("leo"), { subject: "Hi", body: "Hello" });
  expectError(refused, 502, "INTEGRATION_ERROR");
  assert.deepEqual(
    [
      refused.body.error.details.provider_code,
      refused.body.error.details.provider_message,
      refused.body.error.details.retryable,
    ],
    ["FAILED_PRECONDITION", "Mail service not enabled", false],
  );
  const limited = await send(key, uniqueAddress("leo"), { subject: "Hi", body: "Hello" });
  expectError(limited, 502, "INTEGRATION_ERROR");
  assert.equal(limited.body.error.details.provider_code, "RESOURCE_EXHAUSTED");
  assert.equal(limited.body.error.details.retryable, true);
  const rows = await db`select status from public.messages where org_id = ${org.orgId}`;
  assert.deepEqual(rows.map((r) => r.status), ["failed", "failed"]);
  // Each send was one POST (a send is never retried by the client: it could go out twice).
  assert.deepEqual((await sendsOf(account)).map((r) => r.status), [400, 429]);
});

test("gmail: sandbox keys connect, test and send without reaching the stand-in", async () => {
  const org = await createTestOrg();
  const testKey = await org.key({ environment: "test" });
  const account = await newGmailAccount();
  const integration = (await connectGmail(testKey, account)).body.data;
  const tested = await api("integrations/test", {
    action: "test",
    data: { integration_id: integration.id },
  }, { key: testKey });
  assert.equal(tested.status, 200, JSON.stringify(tested.body));
  assert.equal(tested.body.data.simulated, true);
  const sent = await send(testKey, uniqueAddress("sim"), { subject: "Hi", body: "Hello" });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal(sent.body.data.simulated, true);
  assert.deepEqual(await requestsOf(account), []);
});

test("gmail: connect checks the Gmail set by its schema, naming the field", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const account = await newGmailAccount();
  const { refresh_token: _, ...withoutToken } = account.credentials;
  const cases: [unknown, string, string][] = [
    [withoutToken, "credentials.refresh_token", "required"],
    [{ ...account.credentials, host: "smtp.gmail.com" }, "credentials.host", "unknown_field"],
    [{ ...account.credentials, transport: "outlook" }, "credentials.transport", "enum"],
  ];
  for (const [credentials, field, constraint] of cases) {
    const response = await api("integrations/connect", {
      action: "connect",
      data: connectBody(credentials),
    }, { key });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.deepEqual(
      [response.body.error.details.field, response.body.error.details.constraint],
      [field, constraint],
      JSON.stringify(response.body),
    );
    assertNoSecrets(response.body, account);
  }
  assert.deepEqual(await requestsOf(account), []);
});
