/**
 * The email channel's pure parts: addresses, credentials, the message checks and the
 * inbound receiver kind's authentication and parsing. The SMTP client against the mail
 * catcher, and inbound email through the receivers function, are in tests/email_test.ts.
 */
import assert from "node:assert/strict";
// The registry first, as the app loads the channels (channels.ts → email.ts → inbound.ts →
// messages.ts → channels.ts is a cycle that only this order resolves).
import "../channels.ts";
import { ApiError } from "../../platform/errors.ts";
import {
  email,
  EMAIL_SIGNATURE_HEADER,
  emailReceiverKind,
  normalizeAddress,
  parseMailbox,
  signInboundEmail,
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
  const credentials = email.credentials.parse({ ...CREDENTIALS, secure: false, port: 2465 });
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
