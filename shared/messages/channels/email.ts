/**
 * The email channel: sending through an SMTP server (nodemailer) or through Gmail's API
 * (OAuth), and inbound email delivered by a provider webhook.
 *
 * Credentials are one of two sets, told apart by `transport` (how mail leaves):
 * - SMTP (`transport` absent or `"smtp"`): `host`, `port`, `secure`, `username`, `password`,
 *   `from`. Supabase Edge Functions block outbound ports 25 and 587, so in production use
 *   port 465 (implicit TLS, `secure: true`). A host that is not port 465 gets STARTTLS
 *   required (no password in clear), except on loopback (the local mail catcher,
 *   local/stand-ins/mail.ts). The SMTP host passes the same address guard as every
 *   user-chosen target (no private or metadata addresses), and the connection goes to the
 *   address that was checked.
 * - Gmail (`transport: "gmail"`): `client_id`, `client_secret`, `refresh_token` (an OAuth
 *   client of the user's Google Cloud project, with a refresh token granted the
 *   `https://www.googleapis.com/auth/gmail.send` scope, plus `gmail.readonly` or
 *   `gmail.metadata` for `test`'s profile call), and `from`. Each send refreshes an access
 *   token (shared/integrations/google-oauth.ts, the code Calendar uses; not cached between
 *   sends) and calls `POST /gmail/v1/users/me/messages/send` with the message nodemailer
 *   composed (`raw`, base64url), through the address guard, at the base URLs of
 *   shared/platform/config.ts (the local stand-in, local/stand-ins/google.ts, locally). The
 *   provider id kept is Gmail's message `id` (Gmail answers `{id, threadId}`; the
 *   Message-ID header nodemailer wrote may be replaced by Gmail). Gmail sends as the
 *   account: a `from` that is not the account or one of its "Send mail as" addresses is
 *   rewritten by Gmail to the account's address.
 *
 * Inbound: SMTP is not something an Edge Function can listen for, so inbound email arrives as
 * a webhook, in a format of our own signed with the credentials' optional `inbound_secret`
 * (a provider's inbound hook is adapted to it, see {@link emailReceiverKind}); the local
 * stack's mail catcher delivers it that way too. Gmail's own push (Pub/Sub watch) is not
 * used: a Gmail mailbox's inbound email comes through the same relay webhook.
 */
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import { gmail_v1 } from "@googleapis/gmail";
// @ts-types="@types/nodemailer"
import nodemailer from "nodemailer";
import { z } from "zod";
import {
  type GoogleCredentials,
  googleOAuthClient,
  readGoogleError,
} from "../../integrations/google-oauth.ts";
import { config } from "../../platform/config.ts";
import { invalidField } from "../../platform/errors.ts";
import { checkOutboundUrl, OutboundBlockedError } from "../../platform/outbound/address-guard.ts";
import { guardedFetch } from "../../platform/outbound/fetch.ts";
import {
  defineReceiverKind,
  hmacSha256Hex,
  malformedBody,
  parseJsonBody,
  timingSafeEqualText,
} from "../../platform/receiver.ts";
import { recordInbound } from "../inbound.ts";
import {
  ChannelError,
  defineChannel,
  type InboundMessage,
  type OutboundMessage,
} from "../channel.ts";

// ---------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------

/** RFC 5322 dot-atom text (the usual local part; quoted local parts are not accepted). */
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
/** A host name of two labels or more (letters, digits, inner hyphens). */
const DOMAIN =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** `Display Name <address>` (the name optionally quoted). */
const NAME_AND_ADDRESS = /^\s*(?:"([^"\r\n]*)"|([^"<>\r\n]*?))\s*<([^<>\s]+)>\s*$/;

/**
 * An addr-spec (`local@domain.tld`, ASCII, at most 254 characters) with its domain
 * lower-cased (the local part is the mailbox's own business and kept as it is); null when
 * it is not one.
 */
export function normalizeAddress(text: string): string | null {
  if (text.length > 254) return null;
  const at = text.lastIndexOf("@");
  if (at < 1) return null;
  const local = text.slice(0, at);
  const domain = text.slice(at + 1);
  if (local.length > 64 || !LOCAL_PART.test(local) || domain.length > 253) return null;
  if (!DOMAIN.test(domain)) return null;
  return `${local}@${domain.toLowerCase()}`;
}

/** `a@b.com` or `Name <a@b.com>` → its parts; null when it is neither. */
export function parseMailbox(text: string): { address: string; name: string | null } | null {
  const bare = normalizeAddress(text.trim());
  if (bare) return { address: bare, name: null };
  const match = NAME_AND_ADDRESS.exec(text);
  const address = match && normalizeAddress(match[3]);
  if (!address) return null;
  const name = (match[1] ?? match[2] ?? "").trim();
  return { address, name: name || null };
}

// ---------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------

/** A host name or an IP literal, without scheme, port or path. */
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[?[0-9A-Fa-f:.]+\]?$/;

/** The sender: `billing@acme.com` or `Acme Billing <billing@acme.com>`. */
const fromField = z.string().max(512).refine((from) => parseMailbox(from) !== null, {
  message: "an email address, optionally with a display name (Name <address>)",
});

/**
 * The secret inbound email is signed with (X-BiVelio-Email-Signature), for the relay that
 * delivers it: chosen here so it can be configured there; generated when absent.
 */
const inboundSecretField = z.string().min(32).max(256).optional();

export const smtpCredentials = z.strictObject({
  /** Absent in the sets stored before Gmail was offered: SMTP. */
  transport: z.literal("smtp").optional(),
  /** The SMTP server (`smtp.example.com`). */
  host: z.string().max(253).regex(HOST, "a host name or IP address, without scheme or port"),
  /** 465 for implicit TLS (what Supabase Edge Functions allow); 25 and 587 are blocked there. */
  port: z.number().int().min(1).max(65535),
  /** Implicit TLS from the first byte (port 465). Default: true for port 465, else false. */
  secure: z.boolean().optional(),
  username: z.string().min(1).max(512),
  password: z.string().min(1).max(1024),
  from: fromField,
  inbound_secret: inboundSecretField,
});
export type SmtpCredentials = z.output<typeof smtpCredentials>;

export const gmailCredentials = z.strictObject({
  transport: z.literal("gmail"),
  /** The OAuth client of the user's Google Cloud project. */
  client_id: z.string().min(1).max(512),
  client_secret: z.string().min(1).max(512),
  /** Granted gmail.send (and gmail.readonly or gmail.metadata for `test`). */
  refresh_token: z.string().min(1).max(2048),
  /** The Gmail account or one of its "Send mail as" addresses. */
  from: fromField,
  inbound_secret: inboundSecretField,
});
export type GmailCredentials = z.output<typeof gmailCredentials>;

/** The transport read first, so an unknown one is an `enum` error naming `transport`. */
export const emailCredentials = z.looseObject({
  transport: z.enum(["smtp", "gmail"], { error: "'smtp' (the default when absent) or 'gmail'" })
    .optional(),
}).pipe(z.discriminatedUnion("transport", [smtpCredentials, gmailCredentials]));
export type EmailCredentials = z.output<typeof emailCredentials>;

const isGmail = (credentials: EmailCredentials): credentials is GmailCredentials =>
  credentials.transport === "gmail";

export type EmailPublic =
  | { from: string; from_name: string | null; host: string; port: number }
  | {
    transport: "gmail";
    from: string;
    from_name: string | null;
    /** The Gmail account's address, as `test` read it from its profile (null until then). */
    account_email: string | null;
  };

const senderOf = (credentials: EmailCredentials) => parseMailbox(credentials.from)!;

function publicPartOf(credentials: EmailCredentials, accountEmail: string | null = null) {
  const sender = senderOf(credentials);
  if (isGmail(credentials)) {
    return {
      transport: "gmail" as const,
      from: sender.address,
      from_name: sender.name,
      account_email: accountEmail,
    };
  }
  return {
    from: sender.address,
    from_name: sender.name,
    host: credentials.host,
    port: credentials.port,
  };
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/** Longest subject accepted (a header line's limit, RFC 5322). */
export const MAX_SUBJECT_LENGTH = 998;

/**
 * What email needs of `message` beyond the common checks: a subject, and a text or HTML
 * body; `template` messages are WhatsApp's. A VALIDATION_ERROR naming the field otherwise.
 * The messages group calls it before storing; `send` calls it again.
 */
export function validateEmailMessage(
  message: Pick<OutboundMessage, "type" | "subject" | "body" | "html">,
): void {
  if (message.type !== "text") {
    throw invalidField(
      "message.type",
      "enum",
      "Email messages are of type 'text' (with message.subject, message.body and an optional message.html).",
    );
  }
  const subject = message.subject?.trim();
  if (!subject) {
    throw invalidField("message.subject", "required", "Email messages need a message.subject.");
  }
  if (subject.length > MAX_SUBJECT_LENGTH) {
    throw invalidField(
      "message.subject",
      "max",
      `message.subject is longer than ${MAX_SUBJECT_LENGTH} characters.`,
    );
  }
  if (!message.body && !message.html) {
    throw invalidField("message.body", "required", "Email messages need a message.body.");
  }
}

// ---------------------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------------------

const CONNECTION_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 30_000;

/** What nodemailer's errors carry (https://nodemailer.com/errors). */
interface SmtpError {
  code?: string;
  responseCode?: number;
  response?: string;
  message?: string;
}

/** nodemailer's codes for a connection that failed or broke: worth trying again later. */
const NETWORK_CODES = new Set(["ECONNECTION", "ETIMEDOUT", "ESOCKET", "EDNS", "ETLS"]);

/**
 * The SMTP server's refusal (reply code and text) or the network failure as a ChannelError.
 * 4xx replies and network failures are retryable; 5xx are not. The password (and the AUTH
 * PLAIN token made of it) is cut out of the text, whatever the server echoed.
 */
export function toChannelError(error: unknown, credentials: SmtpCredentials): ChannelError {
  if (error instanceof ChannelError) return error;
  const smtp = (error ?? {}) as SmtpError;
  const scrub = (text: string) => {
    const secrets = [
      credentials.password,
      Buffer.from(credentials.password).toString("base64"),
      Buffer.from(`\0${credentials.username}\0${credentials.password}`).toString("base64"),
    ];
    return secrets.reduce((out, secret) => out.split(secret).join("[redacted]"), text);
  };
  if (typeof smtp.responseCode === "number") {
    const reply = scrub((smtp.response ?? smtp.message ?? "").trim());
    return new ChannelError(
      "email",
      smtp.responseCode,
      reply || `SMTP reply ${smtp.responseCode}`,
      smtp.responseCode >= 400 && smtp.responseCode < 500,
    );
  }
  const message = scrub(smtp.message ?? String(error));
  return new ChannelError("email", null, message, NETWORK_CODES.has(smtp.code ?? ""));
}

/**
 * A transport for one call (Edge Functions live for a request, so nothing is pooled): to
 * the address the guard checked, with the host name kept for TLS (SNI, certificate).
 */
async function openTransport(credentials: SmtpCredentials) {
  const { host, port } = credentials;
  const bareHost = host.replace(/^\[|\]$/g, "");
  let address: string;
  let loopback: boolean;
  try {
    const hostForUrl = isIP(bareHost) === 6 ? `[${bareHost}]` : bareHost;
    const checked = await checkOutboundUrl(`http://${hostForUrl}:${port}/`);
    address = checked.addresses[0];
    loopback = checked.loopback;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const retryable = !(error instanceof OutboundBlockedError);
    throw new ChannelError("email", null, `SMTP host: ${message}`, retryable);
  }
  const secure = credentials.secure ?? port === 465;
  return nodemailer.createTransport({
    host: address,
    port,
    secure,
    // No password in clear: STARTTLS is required unless TLS is implicit or the server is on
    // this machine (the local mail catcher).
    requireTLS: !secure && !loopback,
    ignoreTLS: !secure && loopback,
    // SNI and the certificate check by the name (an IP literal cannot be a server name).
    tls: isIP(bareHost) ? {} : { servername: bareHost },
    auth: { user: credentials.username, pass: credentials.password },
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: CONNECTION_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
    debug: false,
  });
}

/** Runs `call` on a fresh transport, closed afterwards or when `signal` aborts. */
async function withTransport<T>(
  credentials: SmtpCredentials,
  signal: AbortSignal | undefined,
  call: (transport: nodemailer.Transporter) => Promise<T>,
): Promise<T> {
  signal?.throwIfAborted();
  const transport = await openTransport(credentials);
  const abort = () => transport.close();
  signal?.addEventListener("abort", abort, { once: true });
  try {
    return await call(transport);
  } catch (error) {
    throw toChannelError(error, credentials);
  } finally {
    signal?.removeEventListener("abort", abort);
    transport.close();
  }
}

// ---------------------------------------------------------------------------------------
// The message, composed once for both ways of sending
// ---------------------------------------------------------------------------------------

/** nodemailer's options for `message` from the credentials' sender. */
function mailOf(credentials: EmailCredentials, message: OutboundMessage) {
  const sender = senderOf(credentials);
  return {
    from: sender.name ? { name: sender.name, address: sender.address } : sender.address,
    to: message.to,
    subject: message.subject!.trim(),
    ...(message.body ? { text: message.body } : {}),
    ...(message.html ? { html: message.html } : {}),
    attachments: (message.attachments ?? []).map((file) => ({
      filename: file.filename,
      contentType: file.contentType,
      content: Buffer.from(file.content),
    })),
    // Links and files referenced by path or URL are never fetched from the server.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/** nodemailer composing without sending: the RFC 5322 message, for Gmail's `raw`. */
let composer: nodemailer.Transporter | undefined;

/** `message` as the RFC 5322 bytes nodemailer makes of it (MIME parts, encodings). */
export async function composeRfc5322(
  credentials: EmailCredentials,
  message: OutboundMessage,
): Promise<Uint8Array> {
  composer ??= nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "\r\n" });
  const info = await composer.sendMail(mailOf(credentials, message));
  return new Uint8Array(info.message as Buffer);
}

// ---------------------------------------------------------------------------------------
// Gmail API
// ---------------------------------------------------------------------------------------

const GMAIL_TIMEOUT_MS = 30_000;

/** Google's statuses where trying again later may succeed (quotas, Google's own failures). */
const isRetryableGoogleStatus = (httpStatus: number | null) =>
  httpStatus === null || httpStatus === 429 || httpStatus >= 500;

/**
 * Google's refusal as a ChannelError: the API's `error.status` (or HTTP code) and
 * `error.message`; a refused refresh token (`invalid_grant`) says the grant must be made
 * again and is not retryable. The client secret and refresh token are cut out of any text.
 */
export function gmailChannelError(error: unknown, credentials: GmailCredentials): ChannelError {
  if (error instanceof ChannelError) return error;
  const refusal = readGoogleError(error);
  const scrub = (text: string) =>
    [credentials.refresh_token, credentials.client_secret]
      .reduce((out, secret) => out.split(secret).join("[redacted]"), text);
  if (refusal.invalidGrant) {
    return new ChannelError(
      "email",
      "invalid_grant",
      `Google refused the Gmail grant (invalid_grant: ${scrub(refusal.message)}): the refresh ` +
        "token was revoked or expired. Update the integration with a new refresh token.",
      false,
      true,
    );
  }
  return new ChannelError(
    "email",
    refusal.status ?? refusal.httpStatus,
    scrub(refusal.message),
    isRetryableGoogleStatus(refusal.httpStatus),
  );
}

let gmailFetch: typeof fetch | undefined;

/** The Gmail client of one call: its own OAuth client (an access token per call). */
function gmailApi(credentials: GoogleCredentials, signal: AbortSignal | undefined) {
  gmailFetch ??= guardedFetch({ timeoutMs: GMAIL_TIMEOUT_MS });
  return new gmail_v1.Gmail({
    auth: googleOAuthClient(credentials, null, gmailFetch),
    rootUrl: `${config.googleApiBaseUrl}/`,
    fetchImplementation: gmailFetch,
    signal,
    // A send is never retried (it could go out twice); the profile read is.
    retryConfig: { retry: 2, httpMethodsToRetry: ["GET"] },
  });
}

async function gmailCall<T>(credentials: GmailCredentials, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw gmailChannelError(error, credentials);
  }
}

/** users.messages.send with the composed message; Gmail's message id. */
async function sendWithGmail(
  credentials: GmailCredentials,
  message: OutboundMessage,
  signal: AbortSignal | undefined,
): Promise<string> {
  signal?.throwIfAborted();
  const raw = Buffer.from(await composeRfc5322(credentials, message)).toString("base64url");
  const { data } = await gmailCall(
    credentials,
    () => gmailApi(credentials, signal).users.messages.send({ userId: "me", requestBody: { raw } }),
  );
  if (!data.id) {
    throw new ChannelError("email", null, "Gmail accepted the message without an id.", false);
  }
  return data.id;
}

/** users.getProfile: proves the grant and names the account. */
async function gmailAccountEmail(
  credentials: GmailCredentials,
  signal: AbortSignal | undefined,
): Promise<string | null> {
  const { data } = await gmailCall(
    credentials,
    () => gmailApi(credentials, signal).users.getProfile({ userId: "me" }),
  );
  return data.emailAddress ?? null;
}

// ---------------------------------------------------------------------------------------
// Inbound: the webhook receiver kind
// ---------------------------------------------------------------------------------------

/** The header carrying `sha256=<hex HMAC-SHA256 of the raw body>` with the receiver's secret. */
export const EMAIL_SIGNATURE_HEADER = "x-bivelio-email-signature";

/** The receiver's secrets: the credentials' `inbound_secret`, or a random one made at connect. */
export interface EmailReceiverSecrets {
  signing_secret: string;
}

/** One inbound email as our webhook format carries it. */
export const inboundEmailBody = z.object({
  from: z.string().min(1).max(512),
  to: z.string().min(1).max(512),
  subject: z.string().max(MAX_SUBJECT_LENGTH).default(""),
  text: z.string().default(""),
  html: z.string().optional(),
  message_id: z.string().min(1).max(998),
  /** ISO 8601 or RFC 2822 (the Date header). */
  date: z.string().min(1).max(100),
});
export type InboundEmailBody = z.input<typeof inboundEmailBody>;

/** The signature header's value for `rawBody` (what a sender computes). */
export const signInboundEmail = (secret: string, rawBody: Uint8Array | string) =>
  `sha256=${
    hmacSha256Hex(secret, typeof rawBody === "string" ? new TextEncoder().encode(rawBody) : rawBody)
  }`;

/** The text of an HTML-only email, roughly: tags dropped, entities of markup decoded. */
function textOfHtml(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, "")
    .replace(/<br\s*\/?>|<\/p>/gi, "\n")
    .replace(/<[^>]+>/g, "")
    .replace(/&nbsp;/g, " ").replace(/&lt;/g, "<").replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&")
    .trim();
}

/**
 * Inbound email, `POST /receivers/email/<receiver id>`. The format is ours: a JSON object
 * `{from, to, subject, text, html?, message_id, date}` (one email per request; `from` may be
 * `Name <address>`; `date` ISO 8601 or RFC 2822) signed with
 * `X-BiVelio-Email-Signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the
 * receiver's `signing_secret` (made at connect). A provider's inbound hook (SendGrid Inbound
 * Parse, Mailgun routes, Postmark inbound, SES → Lambda) is adapted by a small relay that
 * maps its fields to these and signs the body. `message_id` is the dedup key: the same email
 * delivered twice is stored once.
 */
export const emailReceiverKind = defineReceiverKind<EmailReceiverSecrets, InboundMessage>({
  kind: "email",
  authenticate({ headers, rawBody, secrets }) {
    const given = headers.get(EMAIL_SIGNATURE_HEADER) ?? "";
    return timingSafeEqualText(given, signInboundEmail(secrets.signing_secret, rawBody));
  },
  parse(rawBody) {
    const parsed = inboundEmailBody.safeParse(parseJsonBody(rawBody));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw malformedBody(
        `Expected {from, to, subject, text, html?, message_id, date}: '${
          issue.path.join(".") || "body"
        }' ${issue.message}.`,
      );
    }
    const email = parsed.data;
    const from = parseMailbox(email.from);
    const to = parseMailbox(email.to);
    if (!from) throw malformedBody("'from' is not an email address.");
    if (!to) throw malformedBody("'to' is not an email address.");
    const receivedAt = new Date(email.date);
    if (Number.isNaN(receivedAt.getTime())) throw malformedBody("'date' is not a date.");
    const message: InboundMessage = {
      channel: "email",
      providerMessageId: email.message_id,
      from: from.address,
      ...(from.name ? { fromName: from.name } : {}),
      to: to.address,
      body: email.text || (email.html ? textOfHtml(email.html) : ""),
      subject: email.subject,
      receivedAt,
    };
    return [{ providerId: email.message_id, payload: message }];
  },
  async handle(tx, item, receiver) {
    await recordInbound(tx, receiver, item.payload);
  },
});

// ---------------------------------------------------------------------------------------
// The channel
// ---------------------------------------------------------------------------------------

export const email = defineChannel<EmailCredentials, EmailPublic>({
  channel: "email",
  credentials: emailCredentials,
  publicPart: publicPartOf,
  normalizeRecipient(to) {
    const address = typeof to === "string" ? normalizeAddress(to.trim()) : null;
    if (!address) {
      throw invalidField("to", "email", "'to' must be one email address (name@example.com).");
    }
    return address;
  },
  async send(credentials, message, { signal }) {
    validateEmailMessage(message);
    const sender = senderOf(credentials);
    if (isGmail(credentials)) {
      return {
        providerMessageId: await sendWithGmail(credentials, message, signal),
        from: sender.address,
      };
    }
    const info = await withTransport(
      credentials,
      signal,
      (transport) => transport.sendMail(mailOf(credentials, message)),
    );
    // One recipient: nodemailer throws when it is refused; this covers a partial answer.
    if (info.rejected.length > 0) {
      throw new ChannelError("email", null, `The server refused ${message.to}.`, false);
    }
    return { providerMessageId: info.messageId, from: sender.address };
  },
  async test(credentials, { signal }) {
    if (isGmail(credentials)) {
      return publicPartOf(credentials, await gmailAccountEmail(credentials, signal));
    }
    await withTransport(credentials, signal, (transport) => transport.verify());
    return publicPartOf(credentials);
  },
  receiverSecrets(credentials): EmailReceiverSecrets {
    if (credentials.inbound_secret) return { signing_secret: credentials.inbound_secret };
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    return { signing_secret: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") };
  },
  receiverKind: emailReceiverKind,
});
