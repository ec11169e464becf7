/**
 * The email channel's pure parts: addresses, credentials, the message checks and the
 * inbound receiver kind's authentication and parsing. The SMTP client against the mail
 * catcher, and inbound email through the receivers function, are in tests/email_test.ts.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
// @ts-types="@types/mailparser"
import { simpleParser } from "mailparser";
// The registry first, as the app loads the channels (channels.ts → email.ts → inbound.ts →
// messages.ts → channels.ts is a cycle that only this order resolves).
import "../channels.ts";
import { ApiError } from "../../platform/errors.ts";
import { validationError } from "../../platform/validation.ts";
import {
  composeRfc5322,
  email,
  EMAIL_SIGNATURE_HEADER,
  emailReceiverKind,
  gmailChannelError,
  type GmailCredentials,
  normalizeAddress,
  parseMailbox,
  signInboundEmail,
  smtpCredentials,
  toChannelError,
  validateEmailMessage,
} from "./email.ts";

const isValidationErrorOn = (field: string) => (error: unknown) =>
  error instanceof ApiError && error.code === "VALIDATION_ERROR" &&
  error.options.details?.field === field;

const CREDENTIALS = {
  host: "smtp.example.com",
  port: 465,
  secure: true,
  username: "billing@acme.example",
  password: "s3cret-password",
  from: "Acme Billing <billing@acme.example>",
};

Deno.test("email addresses: an addr-spec with its domain lower-cased, nothing else", () => {
  assert.equal(normalizeAddress("Maria.Garcia+x@Example.COM"), "Maria.Garcia+x@example.com");
  assert.equal(email.normalizeRecipient("  ana@acme.example "), "ana@acme.example");
  for (
    const bad of [
      "",
      "ana",
      "@acme.example",
      "ana@",
      "ana@localhost",
      "ana@@acme.example",
      "ana@acme..example",
      "ana.@acme.example",
      ".ana@acme.example",
      "a b@acme.example",
      '"quoted"@acme.example',
      "ana@acme.example, leo@bistro.example",
      "Ana <ana@acme.example>",
      "ana@-acme.example",
      "ana@acme.example\r\nBcc: x@evil.example",
      `${"a".repeat(65)}@acme.example`,
      `ana@${"a".repeat(250)}.example`,
    ]
  ) {
    assert.equal(normalizeAddress(bad), null, bad);
    assert.throws(() => email.normalizeRecipient(bad), isValidationErrorOn("to"), bad);
  }
});

Deno.test("email mailboxes: an address or Name <address>", () => {
  assert.deepEqual(parseMailbox("billing@Acme.example"), {
    address: "billing@acme.example",
    name: null,
  });
  assert.deepEqual(parseMailbox("Acme Billing <billing@acme.example>"), {
    address: "billing@acme.example",
    name: "Acme Billing",
  });
  assert.deepEqual(parseMailbox('"García, Ana" <ana@acme.example>'), {
    address: "ana@acme.example",
    name: "García, Ana",
  });
  assert.equal(parseMailbox("Acme <not an address>"), null);
  assert.equal(parseMailbox("Acme\r\nBcc: x <a@acme.example>"), null);
});

Deno.test("email credentials: SMTP account, strict; the public part shows no secret", () => {
  const parsed = email.credentials.parse(CREDENTIALS);
  assert.deepEqual(parsed, CREDENTIALS);
  // secure is optional (implicit TLS on 465 by default).
  const { secure: _secure, ...withoutSecure } = CREDENTIALS;
  assert.ok(email.credentials.safeParse(withoutSecure).success);
  for (
    const bad of [
      { ...CREDENTIALS, host: "smtp://smtp.example.com" },
      { ...CREDENTIALS, host: "smtp.example.com:465" },
      { ...CREDENTIALS, port: 0 },
      { ...CREDENTIALS, port: "465" },
      { ...CREDENTIALS, password: "" },
      { ...CREDENTIALS, from: "Acme Billing" },
      { ...CREDENTIALS, inbound_secret: "short" },
      { ...CREDENTIALS, oauth_token: "x" },
    ]
  ) {
    assert.equal(email.credentials.safeParse(bad).success, false, JSON.stringify(bad));
  }
  const shown = email.publicPart(parsed);
  assert.deepEqual(shown, {
    from: "billing@acme.example",
    from_name: "Acme Billing",
    host: "smtp.example.com",
    port: 465,
  });
  assert.ok(!JSON.stringify(shown).includes(CREDENTIALS.password));
});

Deno.test("email messages: a subject and a body are required, templates are not email's", () => {
  validateEmailMessage({ type: "text", subject: "Invoice", body: "Hello" });
  validateEmailMessage({ type: "text", subject: "Invoice", html: "<p>Hello</p>" });
  assert.throws(
    () => validateEmailMessage({ type: "text", body: "Hello" }),
    isValidationErrorOn("message.subject"),
  );
  assert.throws(
    () => validateEmailMessage({ type: "text", subject: "   ", body: "Hello" }),
    isValidationErrorOn("message.subject"),
  );
  assert.throws(
    () => validateEmailMessage({ type: "text", subject: "x".repeat(999), body: "Hello" }),
    isValidationErrorOn("message.subject"),
  );
  assert.throws(
    () => validateEmailMessage({ type: "text", subject: "Invoice" }),
    isValidationErrorOn("message.body"),
  );
  assert.throws(
    () => validateEmailMessage({ type: "template", subject: "Invoice", body: "x" }),
    isValidationErrorOn("message.type"),
  );
});

Deno.test("email receiver secrets: the chosen inbound secret, or a fresh random one", () => {
  const chosen = "c".repeat(40);
  assert.deepEqual(email.receiverSecrets!({ ...CREDENTIALS, inbound_secret: chosen }), {
    signing_secret: chosen,
  });
  const a = email.receiverSecrets!(CREDENTIALS) as { signing_secret: string };
  const b = email.receiverSecrets!(CREDENTIALS) as { signing_secret: string };
  assert.match(a.signing_secret, /^[0-9a-f]{64}$/);
  assert.notEqual(a.signing_secret, b.signing_secret);
});

Deno.test("email errors: the SMTP reply code, retryable on 4xx and network, no password", () => {
  const credentials = smtpCredentials.parse({ ...CREDENTIALS, secure: false, port: 2465 });
  const plainToken = btoa(`\0${CREDENTIALS.username}\0${CREDENTIALS.password}`);
  // A server that echoes what it was given (some do, in their refusals).
  const echoed = toChannelError(
    Object.assign(new Error("Invalid login"), {
      code: "EAUTH",
      responseCode: 535,
      response: `535 5.7.8 AUTH PLAIN ${plainToken} refused for ${CREDENTIALS.password}`,
    }),
    credentials,
  );
  assert.equal(echoed.providerCode, 535);
  assert.equal(echoed.retryable, false);
  assert.equal(echoed.providerMessage, "535 5.7.8 AUTH PLAIN [redacted] refused for [redacted]");
  assert.ok(!JSON.stringify(echoed.toApiError().options).includes(CREDENTIALS.password));

  const busy = toChannelError(
    Object.assign(new Error("x"), { responseCode: 421, response: "421 4.7.0 Try later" }),
    credentials,
  );
  assert.deepEqual([busy.providerCode, busy.retryable], [421, true]);
  const reset = toChannelError(
    Object.assign(new Error("Connection closed unexpectedly"), { code: "ECONNECTION" }),
    credentials,
  );
  assert.deepEqual([reset.providerCode, reset.retryable], [null, true]);
  const noAuth = toChannelError(
    Object.assign(new Error("Missing credentials for PLAIN"), { code: "EAUTH" }),
    credentials,
  );
  assert.deepEqual([noAuth.providerCode, noAuth.retryable], [null, false]);
});

// ---------------------------------------------------------------------------------------
// Gmail

const GMAIL = {
  transport: "gmail",
  client_id: "1234-abc.apps.googleusercontent.com",
  client_secret: "GOCSPX-client-secret-value",
  refresh_token: "1//refresh-token-value",
  from: "Acme Billing <billing@acme.example>",
};

/** The VALIDATION_ERROR integrations/connect answers for `credentials` (its first issue). */
function connectErrorFor(credentials: unknown) {
  const result = email.credentials.safeParse(credentials);
  assert.ok(!result.success, `accepted: ${JSON.stringify(credentials)}`);
  return validationError(result.error.issues[0], credentials, "credentials", ["credentials"])
    .options.details!;
}

Deno.test("email credentials: SMTP as before (transport absent or 'smtp'), or a Gmail set", () => {
  assert.deepEqual(email.credentials.parse(CREDENTIALS), CREDENTIALS);
  assert.equal(email.credentials.parse({ ...CREDENTIALS, transport: "smtp" }).transport, "smtp");
  assert.deepEqual(email.credentials.parse(GMAIL), GMAIL);
  // Each set is strict: no SMTP field in a Gmail set, no OAuth field in an SMTP one.
  assert.deepEqual(connectErrorFor({ ...GMAIL, host: "smtp.example.com" }), {
    field: "credentials.host",
    constraint: "unknown_field",
  });
  assert.deepEqual(connectErrorFor({ ...CREDENTIALS, refresh_token: "x" }), {
    field: "credentials.refresh_token",
    constraint: "unknown_field",
  });
  const { refresh_token: _, ...withoutToken } = GMAIL;
  assert.deepEqual(connectErrorFor(withoutToken), {
    field: "credentials.refresh_token",
    constraint: "required",
  });
  assert.equal(connectErrorFor({ ...GMAIL, from: "not an address" }).field, "credentials.from");
  assert.deepEqual(connectErrorFor({ ...GMAIL, transport: "outlook" }), {
    field: "credentials.transport",
    constraint: "enum",
  });
  const unknownTransport = email.credentials.safeParse({ ...GMAIL, transport: "outlook" });
  assert.match(unknownTransport.error!.issues[0].message, /'smtp'.*'gmail'/);
});

Deno.test("email public part: Gmail shows the transport and sender, never a secret", () => {
  const gmail = email.credentials.parse(GMAIL);
  assert.deepEqual(email.publicPart(gmail), {
    transport: "gmail",
    from: "billing@acme.example",
    from_name: "Acme Billing",
    account_email: null,
  });
  assert.deepEqual(email.publicPart(email.credentials.parse(CREDENTIALS)), {
    from: "billing@acme.example",
    from_name: "Acme Billing",
    host: "smtp.example.com",
    port: 465,
  });
});

Deno.test("Gmail's raw message: nodemailer's MIME with the text, the HTML and the attachment", async () => {
  const pdf = new Uint8Array([...new TextEncoder().encode("%PDF-1.7\n"), 0, 255, 128, 10, 13]);
  const raw = await composeRfc5322(email.credentials.parse(GMAIL), {
    to: "maria@customer.example",
    type: "text",
    subject: "  Your invoice ",
    body: "Hello, é attached.",
    html: "<p>Hello, <b>é</b> attached.</p>",
    attachments: [{ filename: "inv-1.pdf", contentType: "application/pdf", content: pdf }],
  });
  const text = new TextDecoder().decode(raw);
  assert.match(text, /\r\n\r\n/, "CRLF line ends");
  assert.match(text, /^Message-ID: <[^<>@\s]+@acme\.example>\r$/m);
  const parsed = await simpleParser(Buffer.from(raw));
  assert.equal(parsed.subject, "Your invoice");
  assert.equal(parsed.from?.text, '"Acme Billing" <billing@acme.example>');
  assert.equal(parsed.text?.trim(), "Hello, é attached.");
  assert.equal(parsed.html, "<p>Hello, <b>é</b> attached.</p>");
  assert.equal(parsed.attachments.length, 1);
  assert.equal(parsed.attachments[0].filename, "inv-1.pdf");
  assert.deepEqual(new Uint8Array(parsed.attachments[0].content), pdf);
});

/** What gaxios throws for an answer of `status` with `data`. */
const gaxiosError = (status: number, data: unknown) =>
  Object.assign(new Error(`Request failed with status code ${status}`), {
    status,
    response: { status, data },
  });

Deno.test("Gmail errors: Google's status and message; invalid_grant not retryable; no secret", () => {
  const credentials = email.credentials.parse(GMAIL) as GmailCredentials;
  const revoked = gmailChannelError(
    gaxiosError(400, {
      error: "invalid_grant",
      error_description: "Token has been expired or revoked.",
    }),
    credentials,
  );
  assert.equal(revoked.providerCode, "invalid_grant");
  assert.equal(revoked.retryable, false);
  assert.match(revoked.providerMessage, /Token has been expired or revoked\..*new refresh token/);
  assert.equal(revoked.toApiError().code, "INTEGRATION_ERROR");

  const refused = gmailChannelError(
    gaxiosError(400, {
      error: {
        code: 400,
        status: "INVALID_ARGUMENT",
        message: "Invalid To header",
        errors: [{ reason: "invalidArgument", message: "Invalid To header" }],
      },
    }),
    credentials,
  );
  assert.deepEqual(
    [refused.providerCode, refused.providerMessage, refused.retryable],
    ["INVALID_ARGUMENT", "Invalid To header", false],
  );
  const quota = gmailChannelError(
    gaxiosError(429, { error: { code: 429, status: "RESOURCE_EXHAUSTED", message: "Quota" } }),
    credentials,
  );
  assert.deepEqual([quota.providerCode, quota.retryable], ["RESOURCE_EXHAUSTED", true]);
  const unreachable = gmailChannelError(new TypeError("connection refused"), credentials);
  assert.deepEqual([unreachable.providerCode, unreachable.retryable], [null, true]);

  // Whatever a message quoted, the secrets do not come out.
  const echoed = gmailChannelError(
    gaxiosError(401, {
      error: "invalid_client",
      error_description: `bad ${GMAIL.client_secret} for ${GMAIL.refresh_token}`,
    }),
    credentials,
  );
  const answered = JSON.stringify(echoed.toApiError().options);
  assert.ok(!answered.includes(GMAIL.client_secret) && !answered.includes(GMAIL.refresh_token));
  assert.equal(echoed.providerCode, "invalid_client");
});

// ---------------------------------------------------------------------------------------
// The receiver kind

const SECRET = "s".repeat(48);
const receiver = { id: "rcv_x", kind: "email", orgId: "org_x", environment: "live" as const };
const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const INBOUND = {
  from: "Maria Garcia <Maria@Example.com>",
  to: "billing@acme.example",
  subject: "Re: Invoice",
  text: "Thanks!",
  message_id: "<abc@example.com>",
  date: "Tue, 01 Dec 2026 10:00:00 +0000",
};

const authenticate = (rawBody: Uint8Array, signature: string | null) =>
  emailReceiverKind.authenticate({
    receiver,
    secrets: { signing_secret: SECRET },
    rawBody,
    headers: new Headers(signature === null ? {} : { [EMAIL_SIGNATURE_HEADER]: signature }),
    url: new URL("http://localhost/receivers/email/rcv_x"),
  });

Deno.test("email receiver: the HMAC of the raw body with the receiver's secret, nothing else", () => {
  const raw = bytes(INBOUND);
  assert.equal(authenticate(raw, signInboundEmail(SECRET, raw)), true);
  assert.equal(authenticate(raw, null), false);
  assert.equal(authenticate(raw, ""), false);
  assert.equal(authenticate(raw, signInboundEmail(SECRET, raw).slice("sha256=".length)), false);
  assert.equal(authenticate(raw, signInboundEmail("another-secret", raw)), false);
  assert.equal(
    authenticate(bytes({ ...INBOUND, text: "Thanks!!" }), signInboundEmail(SECRET, raw)),
    false,
  );
});

Deno.test("email receiver: one email → one inbound message keyed by its Message-ID", () => {
  const items = emailReceiverKind.parse(bytes(INBOUND), new Headers());
  assert.deepEqual(items, [{
    providerId: "<abc@example.com>",
    payload: {
      channel: "email",
      providerMessageId: "<abc@example.com>",
      from: "Maria@example.com",
      fromName: "Maria Garcia",
      to: "billing@acme.example",
      body: "Thanks!",
      subject: "Re: Invoice",
      receivedAt: new Date("2026-12-01T10:00:00Z"),
    },
  }]);
  // An HTML-only email: its text.
  const [htmlOnly] = emailReceiverKind.parse(
    bytes({ ...INBOUND, text: "", html: "<p>Hi&nbsp;<b>there</b></p><script>x()</script>" }),
    new Headers(),
  );
  assert.equal(htmlOnly.payload.body, "Hi there");
});

Deno.test("email receiver: a body that is not our format is a 400", () => {
  for (
    const bad of [
      "not json",
      JSON.stringify([INBOUND]),
      JSON.stringify({ ...INBOUND, message_id: "" }),
      JSON.stringify({ ...INBOUND, from: "nobody" }),
      JSON.stringify({ ...INBOUND, to: undefined }),
      JSON.stringify({ ...INBOUND, date: "yesterday" }),
      JSON.stringify({ ...INBOUND, text: 42 }),
    ]
  ) {
    assert.throws(
      () => emailReceiverKind.parse(new TextEncoder().encode(bad), new Headers()),
      (error: unknown) => error instanceof ApiError && error.code === "VALIDATION_ERROR",
      bad,
    );
  }
});
