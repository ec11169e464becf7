/**
 * The local mail catcher (local-only, never deployed; Supabase's own local stack has one
 * too): an SMTP server that keeps every email it is sent instead of delivering it, an HTTP
 * view of what arrived, and inbound email for the stack's email receiver.
 *
 * SMTP (plain, no TLS; AUTH PLAIN/LOGIN required, accepted for the one user it is started
 * with, any other password answered `535`). Each email is parsed (mailparser) and kept, the
 * newest 500.
 *
 * HTTP:
 * - `GET /messages[?to=address]`: `{messages: [...]}`, newest first (from, to, subject, text,
 *   html, message_id, attachments' names, types and sizes, what was forwarded);
 * - `GET /messages/<id>`: one, with `raw` (the source as received) and each attachment's
 *   `content_base64`; `DELETE /messages` forgets them all;
 * - `POST /messages/<id>/forward`: delivers it to its mailboxes' receivers again (a provider
 *   redelivering);
 * - `POST /_standin/deliver {"raw_base64", "envelope": {"from", "to": [...]},
 *   "authenticated_user"?}`: a message sent another way than SMTP (the Google stand-in's
 *   Gmail API hands it here) is kept and forwarded as if it had come over SMTP; `{id}`;
 * - `POST /_standin/script {"stage": "rcpt"|"data", "code": 550, "message"?, "to"?}`: the next
 *   RCPT TO (of `to`, or any) or DATA (of a message to `to`, or any) is answered with that
 *   code instead;
 * - `POST /_standin/mailboxes {"address", "receiver_url", "secret"}`: email to `address` (an
 *   organization's own address, its email integration's `from`) is also delivered to
 *   `receiver_url` as the email receiver's signed JSON (shared/messages/channels/email.ts),
 *   before the DATA is answered; kept in MAIL_STATE_FILE across restarts.
 *   `GET /_standin/mailboxes` lists them (without secrets); `DELETE` with `{"address"}` removes one.
 * - `GET /_standin/health`.
 *
 * Run by local/stack.ts (env: SMTP_PORT, PORT, MAIL_USERNAME, MAIL_PASSWORD, MAIL_STATE_FILE);
 * tests may start one in-process with {@link startMailStandIn}.
 */
import { postToReceiver } from "./post-to-receiver.ts";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
// @ts-types="@types/smtp-server"
import { SMTPServer, type SMTPServerSession } from "smtp-server";
// @ts-types="@types/mailparser"
import { type AddressObject, simpleParser } from "mailparser";

const MAX_KEPT = 500;

/**
 * The inbound email webhook's signature (shared/messages/channels/email.ts documents the
 * format): written here as a provider's relay would, from the documentation, not by
 * importing the receiver's own code.
 */
const signature = (secret: string, body: string) =>
  `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
const MAX_MESSAGE_BYTES = 25 * 1024 * 1024;

export interface MailStandInOptions {
  /** 0 for any free port. */
  smtpPort: number;
  httpPort: number;
  username: string;
  password: string;
  /** Where mailbox registrations are kept across restarts (none: memory only). */
  stateFile?: string;
}

interface Mailbox {
  address: string;
  receiver_url: string;
  secret: string;
}

interface Forwarded {
  address: string;
  receiver_url: string;
  at: string;
  status: number | null;
  body: unknown;
}

interface KeptMessage {
  id: string;
  received_at: string;
  authenticated_user: string | null;
  envelope: { from: string | null; to: string[] };
  from: { address: string; name: string | null } | null;
  to: string[];
  cc: string[];
  subject: string;
  message_id: string | null;
  date: string | null;
  text: string;
  html: string | null;
  size: number;
  attachments: { filename: string | null; content_type: string; size: number }[];
  forwarded: Forwarded[];
  // Kept for the detail view only.
  raw: string;
  attachment_bytes: Uint8Array[];
}

/** How a message was handed over: over SMTP, or by another stand-in (Gmail's API). */
interface Submission {
  authenticatedUser: string | null;
  envelope: { from: string | null; to: string[] };
}

interface ScriptedReply {
  stage: "rcpt" | "data";
  code: number;
  message?: string;
  to?: string;
}

const addressesOf = (field: AddressObject | AddressObject[] | undefined) =>
  (Array.isArray(field) ? field : field ? [field] : [])
    .flatMap((group) => group.value)
    .map((entry) => entry.address ?? "")
    .filter(Boolean);

const smtpError = (code: number, message: string) =>
  Object.assign(new Error(message), { responseCode: code });

const summary = ({ raw: _raw, attachment_bytes: _bytes, ...message }: KeptMessage) => message;

export async function startMailStandIn(options: MailStandInOptions) {
  let messages: KeptMessage[] = [];
  const scripts: ScriptedReply[] = [];
  const mailboxes = new Map<string, Mailbox>();
  let sequence = 0;

  if (options.stateFile) {
    try {
      const saved = JSON.parse(await Deno.readTextFile(options.stateFile)) as Mailbox[];
      for (const mailbox of saved) mailboxes.set(mailbox.address, mailbox);
    } catch {
      // none saved yet
    }
  }
  const saveMailboxes = async () => {
    if (!options.stateFile) return;
    await Deno.writeTextFile(options.stateFile, JSON.stringify([...mailboxes.values()], null, 2));
  };

  /** The first scripted reply for this stage and one of these recipients, taken. */
  const takeScript = (stage: ScriptedReply["stage"], recipients: string[]) => {
    const index = scripts.findIndex((script) =>
      script.stage === stage &&
      (!script.to || recipients.includes(script.to.toLowerCase()))
    );
    return index < 0 ? null : scripts.splice(index, 1)[0];
  };

  /** Delivers `message` to the receivers of the mailboxes it was sent to. */
  async function forward(message: KeptMessage) {
    const results: Forwarded[] = [];
    for (const recipient of message.envelope.to) {
      const mailbox = mailboxes.get(recipient);
      if (!mailbox) continue;
      const from = message.from
        ? message.from.name
          ? `"${message.from.name.replace(/["\\\r\n]/g, "")}" <${message.from.address}>`
          : message.from.address
        : message.envelope.from ?? "";
      const body = JSON.stringify({
        from,
        to: mailbox.address,
        subject: message.subject,
        text: message.text,
        ...(message.html ? { html: message.html } : {}),
        message_id: message.message_id ?? `<${message.id}@mail-catcher.local>`,
        date: message.date ?? message.received_at,
      });
      const { status, answer } = await postToReceiver(mailbox.receiver_url, body, {
        "x-bivelio-email-signature": signature(mailbox.secret, body),
      });
      results.push({
        address: mailbox.address,
        receiver_url: mailbox.receiver_url,
        at: new Date().toISOString(),
        status,
        body: answer,
      });
    }
    message.forwarded.push(...results);
    return results;
  }

  /** The sender and recipients of an SMTP session (MAIL FROM, RCPT TO). */
  const submissionOf = (session: SMTPServerSession): Submission => ({
    authenticatedUser: typeof session.user === "string" ? session.user : null,
    envelope: {
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
      to: session.envelope.rcptTo.map((rcpt) => rcpt.address.toLowerCase()),
    },
  });

  async function keep(raw: Buffer, submission: Submission): Promise<KeptMessage> {
    const parsed = await simpleParser(raw);
    const sender = parsed.from?.value[0];
    const message: KeptMessage = {
      id: `mail_${++sequence}_${crypto.randomUUID().slice(0, 8)}`,
      received_at: new Date().toISOString(),
      authenticated_user: submission.authenticatedUser,
      envelope: submission.envelope,
      from: sender?.address ? { address: sender.address, name: sender.name || null } : null,
      to: addressesOf(parsed.to),
      cc: addressesOf(parsed.cc),
      subject: parsed.subject ?? "",
      message_id: parsed.messageId ?? null,
      date: parsed.date?.toISOString() ?? null,
      text: parsed.text ?? "",
      html: typeof parsed.html === "string" ? parsed.html : null,
      size: raw.byteLength,
      attachments: parsed.attachments.map((file) => ({
        filename: file.filename ?? null,
        content_type: file.contentType,
        size: file.size,
      })),
      forwarded: [],
      raw: raw.toString("utf8"),
      attachment_bytes: parsed.attachments.map((file) => new Uint8Array(file.content)),
    };
    messages.unshift(message);
    if (messages.length > MAX_KEPT) messages = messages.slice(0, MAX_KEPT);
    return message;
  }

  const smtp = new SMTPServer({
    secure: false,
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    authMethods: ["PLAIN", "LOGIN"],
    size: MAX_MESSAGE_BYTES,
    banner: "BiVelio local mail catcher",
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === options.username && auth.password === options.password) {
        return callback(null, { user: auth.username });
      }
      callback(smtpError(535, "5.7.8 Authentication credentials invalid"));
    },
    onRcptTo(address, _session, callback) {
      const scripted = takeScript("rcpt", [address.address.toLowerCase()]);
      if (scripted) {
        return callback(smtpError(scripted.code, scripted.message ?? "Scripted refusal"));
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", (error: Error) => callback(error));
      stream.on("end", async () => {
        if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
          return callback(smtpError(552, "5.3.4 Message too big"));
        }
        const recipients = session.envelope.rcptTo.map((rcpt) => rcpt.address.toLowerCase());
        const scripted = takeScript("data", recipients);
        if (scripted) {
          return callback(smtpError(scripted.code, scripted.message ?? "Scripted refusal"));
        }
        try {
          const message = await keep(Buffer.concat(chunks), submissionOf(session));
          await forward(message);
          callback(null, `2.0.0 Ok: kept as ${message.id}`);
        } catch (error) {
          callback(smtpError(451, `4.3.0 The catcher failed: ${String(error)}`));
        }
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    smtp.once("error", reject);
    smtp.listen(options.smtpPort, "127.0.0.1", () => resolve());
  });
  // Logged, not thrown: a broken client connection must not stop the catcher.
  smtp.on("error", (error: Error) => console.error(`mail catcher: ${error.message}`));
  const smtpPort = (smtp.server.address() as { port: number }).port;

  const json = (body: unknown, status = 200) => Response.json(body, { status });
  const bodyOf = async (request: Request) => {
    try {
      return await request.json();
    } catch {
      return null;
    }
  };

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname.replace(/\/+$/, "");
    const method = request.method;

    if (path === "/_standin/health" && method === "GET") return json({ ok: true });
    if ((path === "/messages" || path === "/_standin/requests") && method === "GET") {
      const to = url.searchParams.get("to")?.toLowerCase();
      const list = to
        ? messages.filter((m) => m.envelope.to.includes(to) || m.to.includes(to))
        : messages;
      return json({ messages: list.map(summary) });
    }
    if (path === "/messages" && method === "DELETE") {
      messages = [];
      return json({ deleted: true });
    }
    const one = path.match(/^\/messages\/([^/]+)(\/forward)?$/);
    if (one) {
      const message = messages.find((m) => m.id === one[1]);
      if (!message) return json({ error: "no such message" }, 404);
      if (!one[2] && method === "GET") {
        return json({
          ...summary(message),
          raw: message.raw,
          attachments: message.attachments.map((file, index) => ({
            ...file,
            content_base64: Buffer.from(message.attachment_bytes[index]).toString("base64"),
          })),
        });
      }
      if (one[2] && method === "POST") return json({ forwarded: await forward(message) });
    }
    if (path === "/_standin/deliver" && method === "POST") {
      const body = await bodyOf(request);
      const to = body?.envelope?.to;
      if (
        typeof body?.raw_base64 !== "string" || !Array.isArray(to) ||
        !to.every((address: unknown) => typeof address === "string")
      ) {
        return json({ error: 'expected {"raw_base64", "envelope": {"from", "to": [...]}}' }, 400);
      }
      const message = await keep(Buffer.from(body.raw_base64, "base64"), {
        authenticatedUser: typeof body.authenticated_user === "string"
          ? body.authenticated_user
          : null,
        envelope: {
          from: typeof body.envelope.from === "string" ? body.envelope.from : null,
          to: to.map((address: string) => address.toLowerCase()),
        },
      });
      await forward(message);
      return json({ id: message.id });
    }
    if (path === "/_standin/script" && method === "POST") {
      const body = await bodyOf(request);
      if (
        !body || (body.stage !== "rcpt" && body.stage !== "data") ||
        !Number.isInteger(body.code) || body.code < 400 || body.code > 599
      ) {
        return json({ error: 'expected {"stage": "rcpt"|"data", "code": 400-599, ...}' }, 400);
      }
      scripts.push({
        stage: body.stage,
        code: body.code,
        message: typeof body.message === "string" ? body.message : undefined,
        to: typeof body.to === "string" ? body.to : undefined,
      });
      return json({ queued: scripts.length });
    }
    if (path === "/_standin/mailboxes") {
      if (method === "GET") {
        return json({
          mailboxes: [...mailboxes.values()].map(({ secret: _secret, ...rest }) => rest),
        });
      }
      const body = await bodyOf(request);
      const address = typeof body?.address === "string" ? body.address.toLowerCase() : "";
      if (!address.includes("@")) return json({ error: "expected an address" }, 400);
      if (method === "DELETE") {
        mailboxes.delete(address);
        await saveMailboxes();
        return json({ deleted: true });
      }
      if (method === "POST") {
        if (typeof body.receiver_url !== "string" || typeof body.secret !== "string") {
          return json({ error: "expected {address, receiver_url, secret}" }, 400);
        }
        mailboxes.set(address, { address, receiver_url: body.receiver_url, secret: body.secret });
        await saveMailboxes();
        return json({ registered: address });
      }
    }
    return json({ error: `no such route: ${method} ${url.pathname}` }, 404);
  }

  const http = Deno.serve(
    { hostname: "127.0.0.1", port: options.httpPort, onListen() {} },
    handle,
  );
  return {
    smtpPort,
    httpUrl: `http://127.0.0.1:${http.addr.port}`,
    async close() {
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
      await http.shutdown();
    },
  };
}

if (import.meta.main) {
  const env = (name: string) => {
    const value = Deno.env.get(name);
    if (!value) throw new Error(`${name} must be set`);
    return value;
  };
  const catcher = await startMailStandIn({
    smtpPort: Number(env("SMTP_PORT")),
    httpPort: Number(env("PORT")),
    username: env("MAIL_USERNAME"),
    password: env("MAIL_PASSWORD"),
    stateFile: Deno.env.get("MAIL_STATE_FILE"),
  });
  console.log(`Mail catcher: SMTP on 127.0.0.1:${catcher.smtpPort}, view on ${catcher.httpUrl}`);
}
