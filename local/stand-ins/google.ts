/**
 * A local stand-in for Google's OAuth token endpoint and Calendar API v3 (local only, never
 * deployed), speaking the wire protocol `@googleapis/calendar` uses, so the live client is
 * tested as it is and `deno task start` works without a Google account:
 *
 * - `POST /token` (form): `grant_type=refresh_token` with `client_id`, `client_secret`,
 *   `refresh_token` → `{access_token, expires_in, token_type, scope}`; an unknown or revoked
 *   refresh token → 400 `{"error":"invalid_grant","error_description":…}`.
 * - `/calendar/v3/calendars/{calendarId}/events`: `POST` insert (a client-chosen `id` is
 *   kept, a duplicate is 409 `duplicate`; `sendUpdates` recorded), `GET` list (`timeMin`,
 *   `timeMax`, `showDeleted`, `syncToken`, `pageToken`, `maxResults`; the last page carries
 *   `nextSyncToken`; an unknown sync token is 410 `fullSyncRequired`); `/events/{eventId}`:
 *   `GET`, `PATCH`, `DELETE` (the event becomes `cancelled`; again: 410 `deleted`).
 *   `Authorization: Bearer <access token>`; a missing, unknown or expired one is 401.
 *   Errors in Google's shape `{"error":{"errors":[{domain, reason, message}], code, message}}`.
 * - Gmail API v1 (what `@googleapis/gmail` calls for the email channel's Gmail transport):
 *   `POST /gmail/v1/users/{me|address}/messages/send` `{raw}` (base64url RFC 5322) →
 *   `{id, threadId, labelIds: ["SENT"]}`; the message is decoded (mailparser) and recorded
 *   with its parts (from, to, subject, text, html, Message-ID, attachments with their bytes
 *   as `content_base64`), and, when the stand-in was given the mail catcher's URL
 *   (MAIL_CATCHER_URL), handed to it so it shows with the SMTP mail
 *   (local/stand-ins/mail.ts, `POST /_standin/deliver`). No `raw`, or no recipient, is 400
 *   `INVALID_ARGUMENT` as Gmail answers. `GET /gmail/v1/users/{me|address}/profile` →
 *   `{emailAddress, messagesTotal, threadsTotal, historyId}`. Gmail's errors carry
 *   `error.status` too (`UNAUTHENTICATED`, `INVALID_ARGUMENT`…).
 *
 * Accounts are named by their refresh token. Controls for tests and the demo:
 * - `POST /_standin/accounts {"refresh_token", "email"?, "access_token_ttl"?}` (idempotent);
 * - `POST /_standin/revoke {"refresh_token"}`: the grant is revoked (invalid_grant);
 * - `POST /_standin/expire_tokens {"refresh_token"}`: its access tokens stop working (401);
 * - `POST /_standin/events {"refresh_token", "calendar_id"?, "event"}`: an event made in
 *   Google by the user (not through the API), answered as the API would;
 * - `POST /_standin/respond {"refresh_token", "calendar_id"?, "event_id", "email",
 *   "response_status"}`: an attendee answers (accepted, declined, tentative, needsAction);
 * - `POST /_standin/gmail_errors {"refresh_token", "errors": [{"code", "status", "message",
 *   "reason"?}]}`: the account's next Gmail sends answer these errors, one each, in order;
 * - `GET /_standin/requests?account=<email>`: what was received (method, path, query, body,
 *   account, token grants), never a token; `POST /_standin/reset` forgets the requests.
 *
 * Run by local/stack.ts (env: PORT, GOOGLE_STATE_FILE where it keeps its accounts, tokens
 * and events across restarts, so a durable `deno task start` finds its Google events again,
 * and MAIL_CATCHER_URL); tests may also start one with {@link createGoogleStandIn}.
 */
import { Buffer } from "node:buffer";
// @ts-types="@types/mailparser"
import { type AddressObject, simpleParser } from "mailparser";

interface StoredEvent {
  // deno-lint-ignore no-explicit-any
  event: Record<string, any>;
  /** The change counter when it last changed (sync tokens are counters). */
  seq: number;
}

interface Account {
  refreshToken: string;
  email: string;
  revoked: boolean;
  accessTokenTtl: number;
  /** access token → expiry (ms). */
  accessTokens: Map<string, number>;
  calendars: Map<string, Map<string, StoredEvent>>;
  /** Scripted answers of the next Gmail sends (absent in state files from before Gmail). */
  gmailErrors?: ScriptedGmailError[];
  /** Messages sent through Gmail (the profile's messagesTotal). */
  gmailSent?: number;
}

interface ScriptedGmailError {
  code: number;
  status: string;
  message: string;
  reason?: string;
}

export interface RecordedGoogleRequest {
  at: string;
  method: string;
  path: string;
  query: Record<string, string>;
  // deno-lint-ignore no-explicit-any
  body: any;
  /** The account's email, when the request named one (by token). */
  account: string | null;
  status: number;
}

const MAX_RECORDED = 1000;
const BASE32HEX = /^[a-v0-9]{5,1024}$/;

/** Google's error body; `status` as the newer APIs (Gmail) add it. */
function googleError(code: number, reason: string, message: string, status?: string) {
  return Response.json({
    error: {
      errors: [{ domain: "global", reason, message }],
      code,
      message,
      ...(status ? { status } : {}),
    },
  }, { status: code });
}

/** Addresses of a parsed header (To, Cc, Bcc). */
const addressesOf = (field: AddressObject | AddressObject[] | undefined) =>
  (Array.isArray(field) ? field : field ? [field] : [])
    .flatMap((group) => group.value)
    .map((entry) => entry.address?.toLowerCase() ?? "")
    .filter(Boolean);

/** Hex, as Gmail's message and thread ids are. */
const newGmailId = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

const randomToken = (prefix: string) =>
  `${prefix}${crypto.randomUUID().replaceAll("-", "")}${crypto.randomUUID().slice(0, 8)}`;

/** A new event id in Google's alphabet (base32hex, lower case). */
const newEventId = () =>
  Array.from(
    crypto.getRandomValues(new Uint8Array(20)),
    (b) => "0123456789abcdefghijklmnopqrstuv"[b % 32],
  )
    .join("");

/** The instant an event boundary names (dateTime, or an all-day date at UTC midnight). */
// deno-lint-ignore no-explicit-any
function instant(boundary: any): number {
  if (boundary?.dateTime) return Date.parse(boundary.dateTime);
  if (boundary?.date) return Date.parse(`${boundary.date}T00:00:00Z`);
  return NaN;
}

/** What GOOGLE_STATE_FILE holds: the accounts with their tokens and calendars. */
interface SavedState {
  instance: string;
  seq: number;
  accounts: (Omit<Account, "accessTokens" | "calendars"> & {
    accessTokens: [string, number][];
    calendars: [string, [string, StoredEvent][]][];
  })[];
}

function readState(path: string): SavedState | null {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return null;
  }
}

export function createGoogleStandIn(
  options: {
    stateFile?: string;
    /** The mail catcher's HTTP URL: mail sent through Gmail is handed to it. */
    mailCatcherUrl?: string;
  } = {},
) {
  const saved = options.stateFile ? readState(options.stateFile) : null;
  const accounts = new Map<string, Account>(
    (saved?.accounts ?? []).map((a) => [a.refreshToken, {
      ...a,
      accessTokens: new Map(a.accessTokens),
      calendars: new Map(a.calendars.map(([id, events]) => [id, new Map(events)])),
    }]),
  );
  const byAccessToken = new Map<string, Account>(
    [...accounts.values()].flatMap((a) => [...a.accessTokens.keys()].map((t) => [t, a])),
  );
  const requests: RecordedGoogleRequest[] = [];
  let seq = saved?.seq ?? 0;
  // In every sync token, so one from another (unsaved) run is refused (410), as an expired one.
  const instance = saved?.instance ?? crypto.randomUUID().slice(0, 8);
  /** Writes the state after a change (small: a local stack's few accounts and events). */
  const save = () => {
    if (!options.stateFile) return;
    const state: SavedState = {
      instance,
      seq,
      accounts: [...accounts.values()].map((a) => ({
        ...a,
        accessTokens: [...a.accessTokens],
        calendars: [...a.calendars].map(([id, events]) => [id, [...events]]),
      })),
    };
    Deno.writeTextFileSync(options.stateFile, JSON.stringify(state));
  };

  const accountOf = (refreshToken: string, email?: string, ttl?: number) => {
    let account = accounts.get(refreshToken);
    if (!account) {
      account = {
        refreshToken,
        email: email ?? `${refreshToken.slice(0, 24)}@standin.example`,
        revoked: false,
        accessTokenTtl: ttl ?? 3600,
        accessTokens: new Map(),
        calendars: new Map(),
      };
      accounts.set(refreshToken, account);
    } else if (ttl !== undefined) {
      account.accessTokenTtl = ttl;
    }
    return account;
  };
  const calendarOf = (account: Account, calendarId: string) => {
    const id = calendarId === account.email ? "primary" : calendarId;
    let events = account.calendars.get(id);
    if (!events) account.calendars.set(id, events = new Map());
    return events;
  };

  const record = (
    request: Request,
    url: URL,
    body: unknown,
    account: Account | null,
    status: number,
  ) => {
    requests.push({
      at: new Date().toISOString(),
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      account: account?.email ?? null,
      status,
    });
    if (requests.length > MAX_RECORDED) requests.shift();
  };

  // deno-lint-ignore no-explicit-any
  const store = (account: Account, calendarId: string, event: Record<string, any>) => {
    const now = new Date().toISOString();
    const stored: StoredEvent = {
      event: {
        kind: "calendar#event",
        etag: `"${++seq}"`,
        status: "confirmed",
        htmlLink: `https://calendar.standin.example/event?eid=${event.id}`,
        created: now,
        updated: now,
        organizer: { email: account.email, self: true },
        creator: { email: account.email, self: true },
        sequence: 0,
        iCalUID: `${event.id}@google.com`,
        ...event,
        attendees: event.attendees?.map((a: Record<string, unknown>) => ({
          responseStatus: "needsAction",
          ...a,
        })),
        reminders: event.reminders ?? { useDefault: true },
      },
      seq,
    };
    calendarOf(account, calendarId).set(event.id, stored);
    return stored.event;
  };

  const touch = (stored: StoredEvent) => {
    stored.seq = ++seq;
    stored.event.updated = new Date().toISOString();
    stored.event.etag = `"${seq}"`;
  };

  async function token(request: Request, url: URL) {
    const form = new URLSearchParams(await request.text());
    const grant = form.get("grant_type");
    const refreshToken = form.get("refresh_token") ?? "";
    const account = accounts.get(refreshToken) ?? null;
    const recorded = { grant_type: grant, client_id: form.get("client_id") };
    if (grant !== "refresh_token") {
      record(request, url, recorded, account, 400);
      return Response.json({
        error: "unsupported_grant_type",
        error_description: `Invalid grant_type: ${grant}`,
      }, { status: 400 });
    }
    if (!account || account.revoked || !form.get("client_id")) {
      record(request, url, recorded, account, 400);
      return Response.json({
        error: "invalid_grant",
        error_description: account ? "Token has been expired or revoked." : "Bad Request",
      }, { status: 400 });
    }
    const accessToken = randomToken("ya29.standin-");
    account.accessTokens.set(accessToken, Date.now() + account.accessTokenTtl * 1000);
    byAccessToken.set(accessToken, account);
    record(request, url, recorded, account, 200);
    return Response.json({
      access_token: accessToken,
      expires_in: account.accessTokenTtl,
      token_type: "Bearer",
      scope: "https://www.googleapis.com/auth/calendar",
    });
  }

  function authorized(request: Request): Account | null {
    const header = request.headers.get("authorization") ?? "";
    const accessToken = header.startsWith("Bearer ") ? header.slice(7) : "";
    const account = byAccessToken.get(accessToken);
    const expiry = account?.accessTokens.get(accessToken);
    if (!account || account.revoked || expiry === undefined || expiry < Date.now()) return null;
    return account;
  }

  function list(account: Account, calendarId: string, url: URL): Response {
    const params = url.searchParams;
    const events = [...calendarOf(account, calendarId).values()];
    const syncToken = params.get("syncToken");
    const maxResults = Math.min(Number(params.get("maxResults") ?? 250) || 250, 2500);
    let selected: StoredEvent[];
    let since: number;
    const pageToken = params.get("pageToken");
    // A page token carries the offset and the counter the listing started at.
    const [offset, startedAt] = pageToken?.match(/^page_(\d+)_(\d+)$/)?.slice(1).map(Number) ??
      [0, seq];
    if (syncToken) {
      if (params.get("timeMin") || params.get("timeMax")) {
        return googleError(400, "invalid", "Sync token cannot be used with timeMin or timeMax.");
      }
      const match = syncToken.match(/^sync_(\d+)_([0-9a-f]{8})_(.+)$/);
      if (!match || match[2] !== instance || match[3] !== account.email) {
        return googleError(
          410,
          "fullSyncRequired",
          "Sync token is no longer valid, a full sync is required.",
        );
      }
      since = Number(match[1]);
      // Changes since the token, deleted events included (so the client learns of them).
      selected = events.filter((e) => e.seq > since && e.seq <= startedAt);
    } else {
      const timeMin = params.get("timeMin") ? Date.parse(params.get("timeMin")!) : -Infinity;
      const timeMax = params.get("timeMax") ? Date.parse(params.get("timeMax")!) : Infinity;
      const showDeleted = params.get("showDeleted") === "true";
      selected = events.filter((e) =>
        e.seq <= startedAt && (showDeleted || e.event.status !== "cancelled") &&
        instant(e.event.end) > timeMin && instant(e.event.start) < timeMax
      );
    }
    selected.sort((a, b) => instant(a.event.start) - instant(b.event.start) || a.seq - b.seq);
    const page = selected.slice(offset, offset + maxResults);
    const more = offset + maxResults < selected.length;
    return Response.json({
      kind: "calendar#events",
      summary: account.email,
      updated: new Date().toISOString(),
      items: page.map((e) => e.event),
      ...(more
        ? { nextPageToken: `page_${offset + maxResults}_${startedAt}` }
        : { nextSyncToken: `sync_${startedAt}_${instance}_${account.email}` }),
    });
  }

  async function calendarApi(request: Request, url: URL): Promise<Response> {
    const match = url.pathname.match(/^\/calendar\/v3\/calendars\/([^/]+)\/events(?:\/([^/]+))?$/);
    const body = ["POST", "PATCH", "PUT"].includes(request.method)
      ? await request.json().catch(() => null)
      : null;
    const account = authorized(request);
    const answer = (response: Response) => {
      record(request, url, body, account, response.status);
      return response;
    };
    if (!match) return answer(googleError(404, "notFound", "Not Found"));
    if (!account) {
      return answer(googleError(401, "authError", "Invalid Credentials"));
    }
    const calendarId = decodeURIComponent(match[1]);
    const eventId = match[2] ? decodeURIComponent(match[2]) : null;
    const events = calendarOf(account, calendarId);

    if (!eventId) {
      if (request.method === "GET") return answer(list(account, calendarId, url));
      if (request.method !== "POST") {
        return answer(googleError(405, "httpMethodNotAllowed", "Method not allowed"));
      }
      if (!body || typeof body !== "object") {
        return answer(googleError(400, "parseError", "Parse Error"));
      }
      if (
        !body.start || !body.end || Number.isNaN(instant(body.start)) ||
        Number.isNaN(instant(body.end))
      ) {
        return answer(googleError(400, "required", "Missing or invalid start or end time."));
      }
      if (instant(body.end) < instant(body.start)) {
        return answer(googleError(400, "timeRangeEmpty", "The specified time range is empty."));
      }
      if (body.id !== undefined && !BASE32HEX.test(body.id)) {
        return answer(googleError(400, "invalid", "Invalid resource id value."));
      }
      if ((body.reminders?.overrides?.length ?? 0) > 5) {
        return answer(googleError(400, "cannotUseMoreThanFiveReminders", "Too many reminders."));
      }
      const id = body.id ?? newEventId();
      if (events.has(id)) {
        return answer(googleError(409, "duplicate", "The requested identifier already exists."));
      }
      return answer(Response.json(store(account, calendarId, { ...body, id })));
    }

    const stored = events.get(eventId);
    if (!stored) return answer(googleError(404, "notFound", "Not Found"));
    if (request.method === "GET") return answer(Response.json(stored.event));
    if (request.method === "PATCH") {
      if (!body || typeof body !== "object") {
        return answer(googleError(400, "parseError", "Parse Error"));
      }
      const { id: _ignored, ...changes } = body;
      const attendees = changes.attendees?.map((a: { email: string }) => ({
        responseStatus: stored.event.attendees?.find((old: { email: string }) =>
          old.email === a.email
        )?.responseStatus ?? "needsAction",
        ...a,
      }));
      Object.assign(stored.event, changes, attendees ? { attendees } : {});
      stored.event.sequence = (stored.event.sequence ?? 0) + 1;
      touch(stored);
      return answer(Response.json(stored.event));
    }
    if (request.method === "DELETE") {
      if (stored.event.status === "cancelled") {
        return answer(googleError(410, "deleted", "Resource has been deleted"));
      }
      stored.event.status = "cancelled";
      touch(stored);
      return answer(new Response(null, { status: 204 }));
    }
    return answer(googleError(405, "httpMethodNotAllowed", "Method not allowed"));
  }

  /** Hands a message sent through Gmail to the mail catcher, as Gmail would deliver it. */
  async function handToCatcher(raw: Uint8Array, from: string, to: string[], account: Account) {
    if (!options.mailCatcherUrl) return null;
    try {
      const response = await fetch(`${options.mailCatcherUrl}/_standin/deliver`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          raw_base64: Buffer.from(raw).toString("base64"),
          envelope: { from, to },
          authenticated_user: `gmail:${account.email}`,
        }),
      });
      const answer = await response.json().catch(() => null);
      return response.ok ? (answer?.id ?? null) : null;
    } catch (error) {
      console.error(`Google stand-in: the mail catcher could not be reached: ${error}`);
      return null;
    }
  }

  async function gmailApi(request: Request, url: URL): Promise<Response> {
    const match = url.pathname.match(/^\/gmail\/v1\/users\/([^/]+)\/(messages\/send|profile)$/);
    const body = request.method === "POST" ? await request.json().catch(() => null) : null;
    const account = authorized(request);
    let recorded: unknown = body;
    const answer = (response: Response) => {
      record(request, url, recorded, account, response.status);
      return response;
    };
    if (!match) return answer(googleError(404, "notFound", "Not Found", "NOT_FOUND"));
    if (!account) {
      return answer(googleError(
        401,
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, " +
          "login cookie or other valid authentication credential.",
        "UNAUTHENTICATED",
      ));
    }
    const userId = decodeURIComponent(match[1]);
    if (userId !== "me" && userId.toLowerCase() !== account.email.toLowerCase()) {
      return answer(googleError(
        403,
        "forbidden",
        "Delegation denied for " + account.email,
        "PERMISSION_DENIED",
      ));
    }
    if (match[2] === "profile") {
      if (request.method !== "GET") {
        return answer(googleError(405, "httpMethodNotAllowed", "Method not allowed"));
      }
      return answer(Response.json({
        emailAddress: account.email,
        messagesTotal: account.gmailSent ?? 0,
        threadsTotal: account.gmailSent ?? 0,
        historyId: String(1000 + (account.gmailSent ?? 0)),
      }));
    }
    if (request.method !== "POST") {
      return answer(googleError(405, "httpMethodNotAllowed", "Method not allowed"));
    }
    // The raw message is recorded decoded, not as its base64url text.
    recorded = { raw_size: typeof body?.raw === "string" ? body.raw.length : null };
    const scripted = account.gmailErrors?.shift();
    if (scripted) {
      return answer(googleError(
        scripted.code,
        scripted.reason ?? "failedPrecondition",
        scripted.message,
        scripted.status,
      ));
    }
    if (typeof body?.raw !== "string" || !body.raw) {
      return answer(googleError(
        400,
        "invalidArgument",
        "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        "INVALID_ARGUMENT",
      ));
    }
    const raw = new Uint8Array(Buffer.from(body.raw, "base64url"));
    const parsed = await simpleParser(Buffer.from(raw));
    const to = [
      ...addressesOf(parsed.to),
      ...addressesOf(parsed.cc),
      ...addressesOf(parsed.bcc),
    ];
    if (to.length === 0) {
      return answer(
        googleError(400, "invalidArgument", "Recipient address required", "INVALID_ARGUMENT"),
      );
    }
    const sender = parsed.from?.value[0];
    const id = newGmailId();
    account.gmailSent = (account.gmailSent ?? 0) + 1;
    recorded = {
      raw_size: body.raw.length,
      id,
      message: {
        from: sender?.address ? { address: sender.address, name: sender.name || null } : null,
        to,
        subject: parsed.subject ?? "",
        message_id: parsed.messageId ?? null,
        text: parsed.text ?? "",
        html: typeof parsed.html === "string" ? parsed.html : null,
        attachments: parsed.attachments.map((file) => ({
          filename: file.filename ?? null,
          content_type: file.contentType,
          size: file.size,
          content_base64: Buffer.from(file.content).toString("base64"),
        })),
      },
      mail_catcher_id: await handToCatcher(raw, sender?.address ?? account.email, to, account),
    };
    return answer(Response.json({ id, threadId: id, labelIds: ["SENT"] }));
  }

  async function control(request: Request, url: URL): Promise<Response> {
    const action = url.pathname.slice("/_standin/".length);
    if (action === "health") return Response.json({ ok: true });
    if (action === "requests") {
      const email = url.searchParams.get("account");
      return Response.json({
        requests: email ? requests.filter((r) => r.account === email) : requests,
      });
    }
    if (action === "reset") {
      requests.length = 0;
      return Response.json({ ok: true });
    }
    const body = await request.json().catch(() => ({}));
    if (typeof body?.refresh_token !== "string" || !body.refresh_token) {
      return Response.json({ error: "refresh_token is required" }, { status: 400 });
    }
    if (action === "accounts") {
      const account = accountOf(body.refresh_token, body.email, body.access_token_ttl);
      return Response.json({ email: account.email });
    }
    const account = accounts.get(body.refresh_token);
    if (!account) return Response.json({ error: "no such account" }, { status: 404 });
    const calendarId = body.calendar_id ?? "primary";
    switch (action) {
      case "revoke":
        account.revoked = true;
        return Response.json({ ok: true });
      case "expire_tokens":
        account.accessTokens.clear();
        return Response.json({ ok: true });
      case "gmail_errors": {
        const errors = Array.isArray(body.errors) ? body.errors : [];
        const valid = errors.every((e: ScriptedGmailError) =>
          Number.isInteger(e?.code) && e.code >= 400 && e.code <= 599 &&
          typeof e.status === "string" && typeof e.message === "string"
        );
        if (errors.length === 0 || !valid) {
          return Response.json({
            error: 'expected {"refresh_token", "errors": [{"code", "status", "message"}]}',
          }, { status: 400 });
        }
        (account.gmailErrors ??= []).push(...errors);
        return Response.json({ queued: account.gmailErrors.length });
      }
      case "events": {
        const id = body.event?.id ?? newEventId();
        const existing = calendarOf(account, calendarId).get(id);
        if (existing) {
          Object.assign(existing.event, body.event);
          touch(existing);
          return Response.json(existing.event);
        }
        return Response.json(store(account, calendarId, { ...body.event, id }));
      }
      case "respond": {
        const stored = calendarOf(account, calendarId).get(body.event_id);
        const attendee = stored?.event.attendees?.find((a: { email: string }) =>
          a.email === body.email
        );
        if (!stored || !attendee) {
          return Response.json({ error: "no such event or attendee" }, { status: 404 });
        }
        attendee.responseStatus = body.response_status;
        touch(stored);
        return Response.json(stored.event);
      }
    }
    return Response.json({ error: `unknown control '${action}'` }, { status: 404 });
  }

  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const response = url.pathname.startsWith("/_standin/")
      ? await control(request, url)
      : url.pathname === "/token" && request.method === "POST"
      ? await token(request, url)
      : url.pathname.startsWith("/gmail/")
      ? await gmailApi(request, url)
      : await calendarApi(request, url);
    if (request.method !== "GET") save();
    return response;
  };
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT"));
  if (!port) throw new Error("PORT must be set");
  const stateFile = Deno.env.get("GOOGLE_STATE_FILE") || undefined;
  const mailCatcherUrl = Deno.env.get("MAIL_CATCHER_URL") || undefined;
  Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    createGoogleStandIn({ stateFile, mailCatcherUrl }),
  );
  console.log(`Google stand-in listening on http://127.0.0.1:${port}`);
}
