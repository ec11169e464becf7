/**
 * The email channel against the stack's mail catcher (local/stand-ins/mail.ts), over real
 * SMTP: what nodemailer sends arrives (text, HTML, an attachment's name and bytes), the
 * catcher's scripted refusals and a wrong password become ChannelErrors with the SMTP reply
 * code and never the password; and inbound email end to end: an integration connected
 * through the API, an email sent to its address, forwarded by the catcher as signed JSON to
 * the stack's receivers function, stored once as an inbound message.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
// @ts-types="@types/nodemailer"
import nodemailer from "nodemailer";
import { type Channel, ChannelError } from "../shared/messages/channel.ts";
// The registry, as the app loads the channels (it resolves their import cycle).
import { channelOf } from "../shared/messages/channels.ts";
import type {
  EmailCredentials,
  EmailPublic,
  InboundEmailBody,
} from "../shared/messages/channels/email.ts";
import { ApiError } from "../shared/platform/errors.ts";
import { expectError } from "./helpers/negative-cases.ts";
import { api, createTestOrg, stack, test } from "./helpers/stack.ts";

// The catcher listens on 127.0.0.1, as the local stack's functions are allowed to reach.
Deno.env.set("BIVELIO_ALLOW_LOOPBACK_TARGETS", "1");

const email = channelOf("email") as Channel<EmailCredentials, EmailPublic>;
const catcher = stack.mail;

const credentials = (overrides: Partial<EmailCredentials> = {}): EmailCredentials =>
  email.credentials.parse({
    host: catcher.smtp_host,
    port: catcher.smtp_port,
    secure: false,
    username: catcher.username,
    password: catcher.password,
    from: "Acme Billing <billing@acme.example>",
    ...overrides,
  });

const uniqueAddress = (label: string, domain = "customer.example") =>
  `${label}-${crypto.randomUUID().slice(0, 8)}@${domain}`;

// deno-lint-ignore no-explicit-any
async function catcherCall(method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${catcher.http_url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const parsed = await response.json();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(parsed)}`);
  return parsed;
}

/** What the catcher kept for `to`, newest first (it answers DATA only once it kept it). */
const caughtFor = async (to: string) =>
  (await catcherCall("GET", `/messages?to=${encodeURIComponent(to)}`)).messages;

const textMessage = (to: string, overrides: Record<string, unknown> = {}) => ({
  to,
  type: "text" as const,
  subject: "Your invoice",
  body: "Hello, your invoice is attached.",
  ...overrides,
});

/** Awaits a rejection and returns it as a ChannelError. */
async function channelErrorOf(promise: Promise<unknown>): Promise<ChannelError> {
  const error = await promise.then(
    () => assert.fail("expected a ChannelError"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof ChannelError, `not a ChannelError: ${error}`);
  return error;
}

// ---------------------------------------------------------------------------------------
// Sending

test("email: text, HTML and a PDF attachment arrive as sent, under the Message-ID answered", async () => {
  const to = uniqueAddress("maria");
  // Every byte value, so a text-mode mangling of the attachment would show.
  const pdf = new Uint8Array(
    [...new TextEncoder().encode("%PDF-1.7\n"), ...Array.from({ length: 256 }, (_, i) => i)],
  );
  const sent = await email.send(credentials(), {
    ...textMessage(to),
    html: "<p>Hello, your <b>invoice</b> is attached.</p>",
    attachments: [{
      filename: "invoice-2026-001.pdf",
      contentType: "application/pdf",
      content: pdf,
    }],
  }, {});
  assert.match(sent.providerMessageId, /^<[^<>@\s]+@acme\.example>$/);
  assert.equal(sent.from, "billing@acme.example");

  const [caught, ...more] = await caughtFor(to);
  assert.equal(more.length, 0);
  assert.equal(caught.message_id, sent.providerMessageId);
  assert.deepEqual(caught.envelope, { from: "billing@acme.example", to: [to] });
  assert.deepEqual(caught.from, { address: "billing@acme.example", name: "Acme Billing" });
  assert.deepEqual(caught.to, [to]);
  assert.equal(caught.subject, "Your invoice");
  assert.equal(caught.text.trim(), "Hello, your invoice is attached.");
  assert.equal(caught.html, "<p>Hello, your <b>invoice</b> is attached.</p>");
  assert.equal(caught.authenticated_user, catcher.username);
  assert.deepEqual(caught.attachments, [
    { filename: "invoice-2026-001.pdf", content_type: "application/pdf", size: pdf.byteLength },
  ]);

  const detail = await catcherCall("GET", `/messages/${caught.id}`);
  assert.deepEqual(
    new Uint8Array(Buffer.from(detail.attachments[0].content_base64, "base64")),
    pdf,
  );
  assert.match(detail.raw, /^Subject: Your invoice\r?$/m);
  assert.ok(!detail.raw.includes(catcher.password));
});

test("email: a refused recipient or message is a ChannelError with the SMTP reply", async () => {
  const to = uniqueAddress("refused");
  await catcherCall("POST", "/_standin/script", {
    stage: "rcpt",
    code: 550,
    message: "5.1.1 No such user here",
    to,
  });
  const refused = await channelErrorOf(email.send(credentials(), textMessage(to), {}));
  assert.equal(refused.channel, "email");
  assert.equal(refused.providerCode, 550);
  assert.match(refused.providerMessage, /^550 5\.1\.1 No such user here/);
  assert.equal(refused.retryable, false);
  const apiError = refused.toApiError();
  assert.equal(apiError.code, "INTEGRATION_ERROR");
  assert.deepEqual(apiError.options.details, {
    provider: "email",
    provider_code: 550,
    provider_message: refused.providerMessage,
    retryable: false,
  });

  // A temporary refusal of the message itself (after DATA): retryable.
  await catcherCall("POST", "/_standin/script", {
    stage: "data",
    code: 451,
    message: "4.3.0 Try again later",
    to,
  });
  const later = await channelErrorOf(email.send(credentials(), textMessage(to), {}));
  assert.equal(later.providerCode, 451);
  assert.match(later.providerMessage, /451 4\.3\.0 Try again later/);
  assert.equal(later.retryable, true);
  assert.deepEqual(await caughtFor(to), []);

  // Each script answered once: the next one goes through.
  await email.send(credentials(), textMessage(to), {});
  assert.equal((await caughtFor(to)).length, 1);
});

test("email: a wrong password is 535 from test and send, and the password is in no error", async () => {
  const to = uniqueAddress("wrong-password");
  const password = `wrong-${crypto.randomUUID()}`;
  const wrong = credentials({ password });
  for (
    const attempt of [
      () => email.test(wrong, {}),
      () => email.send(wrong, textMessage(to), {}),
    ]
  ) {
    const error = await channelErrorOf(attempt());
    assert.equal(error.providerCode, 535);
    assert.match(error.providerMessage, /535 5\.7\.8 Authentication credentials invalid/);
    assert.equal(error.retryable, false);
    const everything = JSON.stringify([
      error.message,
      error.providerMessage,
      error.toApiError().message,
      error.toApiError().options,
      error.stack,
    ]);
    assert.ok(!everything.includes(password), everything);
    assert.ok(!everything.includes(btoa(`\0${catcher.username}\0${password}`)));
  }
  assert.deepEqual(await caughtFor(to), []);

  // The right one: test answers the public part.
  assert.deepEqual(await email.test(credentials(), {}), {
    from: "billing@acme.example",
    from_name: "Acme Billing",
    host: catcher.smtp_host,
    port: catcher.smtp_port,
  });
});

test("email: no server, or a private address, is a ChannelError without a reply code", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const down = await channelErrorOf(email.test(credentials({ port: closedPort }), {}));
  assert.equal(down.providerCode, null);
  assert.equal(down.retryable, true);

  // Refused before any connection: the address guard, as for every user-chosen target.
  for (const host of ["10.1.2.3", "169.254.169.254", "192.168.0.10"]) {
    const blocked = await channelErrorOf(
      email.send(credentials({ host }), textMessage(uniqueAddress("blocked")), {}),
    );
    assert.equal(blocked.providerCode, null);
    assert.equal(blocked.retryable, false);
    assert.match(blocked.providerMessage, /not allowed/);
  }
});

test("email: a message without a subject is a 400 naming message.subject, and not sent", async () => {
  const to = uniqueAddress("no-subject");
  const error = await email.send(credentials(), textMessage(to, { subject: undefined }), {})
    .then(() => null, (error: unknown) => error);
  assert.ok(error instanceof ApiError);
  assert.equal(error.code, "VALIDATION_ERROR");
  assert.equal(error.options.details?.field, "message.subject");
  assert.deepEqual(await caughtFor(to), []);
});

// ---------------------------------------------------------------------------------------
// Through the API and the receivers function

/** Connects an email integration for a new organization; its inbound URL and secret. */
async function connectedOrg() {
  const org = await createTestOrg();
  const key = await org.key();
  const address = uniqueAddress("inbox", "acme.example");
  const inboundSecret = `inbound-${crypto.randomUUID()}`;
  const connected = await api("integrations/connect", {
    action: "connect",
    data: {
      provider: "email",
      credentials: {
        host: catcher.smtp_host,
        port: catcher.smtp_port,
        secure: false,
        username: catcher.username,
        password: catcher.password,
        from: `Acme <${address}>`,
        inbound_secret: inboundSecret,
      },
    },
  }, { key });
  assert.equal(connected.status, 200, JSON.stringify(connected.body));
  const integration = connected.body.data;
  assert.deepEqual(integration.public, {
    from: address,
    from_name: "Acme",
    host: catcher.smtp_host,
    port: catcher.smtp_port,
  });
  assert.match(integration.inbound_url, /\/functions\/v1\/receivers\/email\/rcv_[0-9a-f]{32}$/);
  assert.ok(!JSON.stringify(connected.body).includes(catcher.password));
  assert.ok(!JSON.stringify(connected.body).includes(inboundSecret));
  return { org, key, address, inboundSecret, inboundUrl: integration.inbound_url as string };
}

// deno-lint-ignore no-explicit-any
const inboundMessages = async (key: string): Promise<any[]> => {
  const listed = await api("messages/list", {
    action: "list",
    data: { channel: "email", direction: "inbound" },
  }, { key });
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  return listed.body.data.messages;
};

test("email: messages/send through the API arrives at the catcher with the answered id", async () => {
  const { key } = await connectedOrg();
  const to = uniqueAddress("api");
  const sent = await api("messages/send", {
    action: "send",
    data: {
      channel: "email",
      to,
      message: { type: "text", subject: "Hello from the API", body: "Plain text" },
    },
  }, { key });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const [caught] = await caughtFor(to);
  assert.equal(sent.body.data.email_message_id, caught.message_id);
  assert.equal(caught.subject, "Hello from the API");
});

test("email: mail to the organization's address reaches its conversation once", async () => {
  const { key, address, inboundSecret, inboundUrl } = await connectedOrg();
  await catcherCall("POST", "/_standin/mailboxes", {
    address,
    receiver_url: inboundUrl,
    secret: inboundSecret,
  });

  // Someone outside writes to the organization, through the catcher's SMTP.
  const customer = uniqueAddress("customer");
  const outside = nodemailer.createTransport({
    host: catcher.smtp_host,
    port: catcher.smtp_port,
    secure: false,
    ignoreTLS: true,
    auth: { user: catcher.username, pass: catcher.password },
  });
  const info = await outside.sendMail({
    from: { name: "Maria Garcia", address: customer },
    to: address,
    subject: "Question about my invoice",
    text: "Could you send it again?",
  });
  outside.close();

  const [caught] = await caughtFor(address);
  assert.equal(caught.message_id, info.messageId);
  assert.equal(caught.forwarded.length, 1, JSON.stringify(caught.forwarded));
  assert.equal(caught.forwarded[0].status, 200, JSON.stringify(caught.forwarded[0].body));
  assert.deepEqual(caught.forwarded[0].body.data, { updates: 1, handled: 1, duplicates: 0 });

  const [stored, ...others] = await inboundMessages(key);
  assert.equal(others.length, 0);
  assert.equal(stored.direction, "inbound");
  assert.equal(stored.from, customer);
  assert.equal(stored.to, address);
  assert.equal(stored.message.subject, "Question about my invoice");
  assert.equal(stored.message.body.trim(), "Could you send it again?");
  assert.ok(stored.contact_id, "linked to a contact (a new one for an unknown sender)");

  // The same email delivered again (a provider retrying): acknowledged, stored once.
  const again = await catcherCall("POST", `/messages/${caught.id}/forward`);
  assert.equal(again.forwarded[0].status, 200);
  assert.deepEqual(again.forwarded[0].body.data, { updates: 1, handled: 0, duplicates: 1 });
  assert.equal((await inboundMessages(key)).length, 1);
});

test("email: an inbound delivery with a bad or missing signature is 401 and stores nothing", async () => {
  const { key, address, inboundSecret, inboundUrl } = await connectedOrg();
  const body: InboundEmailBody = {
    from: uniqueAddress("forger"),
    to: address,
    subject: "Forged",
    text: "Pay this",
    message_id: `<forged-${crypto.randomUUID()}@forger.example>`,
    date: new Date().toISOString(),
  };
  const raw = JSON.stringify(body);
  const post = (headers: Record<string, string>, payload = raw) =>
    fetch(inboundUrl, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: payload,
    }).then(async (response) => ({
      status: response.status,
      headers: response.headers,
      body: await response.json(),
    }));
  const sign = (secret: string, payload: string) =>
    `sha256=${createHmac("sha256", secret).update(payload).digest("hex")}`;

  expectError(await post({}), 401, "AUTH_INVALID_TOKEN");
  expectError(
    await post({ "x-bivelio-email-signature": sign("another-secret", raw) }),
    401,
    "AUTH_INVALID_TOKEN",
  );
  // A genuine signature replayed over an altered body.
  expectError(
    await post(
      { "x-bivelio-email-signature": sign(inboundSecret, raw) },
      raw.replace("Pay this", "Pay that"),
    ),
    401,
    "AUTH_INVALID_TOKEN",
  );
  assert.deepEqual(await inboundMessages(key), []);

  // Signed right: stored.
  const good = await post({ "x-bivelio-email-signature": sign(inboundSecret, raw) });
  assert.equal(good.status, 200, JSON.stringify(good.body));
  assert.deepEqual(good.body.data, { updates: 1, handled: 1, duplicates: 0 });
  assert.equal((await inboundMessages(key)).length, 1);
});
