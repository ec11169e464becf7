/**
 * The WhatsApp channel: the WhatsApp Cloud API (Meta's Graph API) for a connected Business
 * phone number.
 *
 * - **Sending**: `POST {base}/{version}/{phone-number-id}/messages` with the access token as
 *   Bearer, a text (`preview_url: false`, at most 4096 characters) or a template (required
 *   outside the 24-hour customer-service window); WhatsApp's `messages[0].id` (`wamid.…`) is
 *   the provider id. A refusal is a {@link ChannelError} carrying WhatsApp's own error code
 *   (190 bad token, 100 bad parameter, 131047 outside the window, 130429 throughput, …).
 * - **Proving the credentials**: `GET {base}/{version}/{phone-number-id}` (the number's
 *   display number and verified name).
 * - **Receiving** (receiver kind `whatsapp`): Meta's GET verification (`hub.challenge` only
 *   with the right verify token) and POSTed callbacks signed with the app secret
 *   (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`); each `messages[]`
 *   entry becomes an inbound message, each `statuses[]` entry a status update.
 *
 * The base URL is `WHATSAPP_API_BASE_URL` (config.whatsappApiBaseUrl): Meta's by default, the
 * local stand-in (local/stand-ins/whatsapp.ts) in the local stack and the tests. Requests go
 * through the address guard (`guardedFetch`), as every provider client with a configurable
 * base URL does; the local stack allows its loopback stand-in with
 * BIVELIO_ALLOW_LOOPBACK_TARGETS.
 */
import { z } from "zod";
import { config } from "../../platform/config.ts";
import { ApiError } from "../../platform/errors.ts";
import { guardedFetch } from "../../platform/outbound/fetch.ts";
import {
  OutboundBlockedError,
  OutboundNetworkError,
} from "../../platform/outbound/address-guard.ts";
import {
  defineReceiverKind,
  hmacSha256Hex,
  invalidSignature,
  malformedBody,
  parseJsonBody,
  type ReceivedItem,
  timingSafeEqualText,
} from "../../platform/receiver.ts";
import { validate } from "../../platform/validation.ts";
import { ChannelError, defineChannel, type InboundMessage, type StatusUpdate } from "../channel.ts";
import { recordInbound, recordStatus } from "../inbound.ts";

/** The Graph API version used unless the integration names another. */
export const DEFAULT_WHATSAPP_API_VERSION = "v21.0";
/** WhatsApp's limit on a text message's body, in characters. */
export const WHATSAPP_TEXT_LIMIT = 4096;
/** How long one call to the Cloud API may take, answer included. */
const REQUEST_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------

export const whatsappCredentials = z.strictObject({
  /** Meta's id of the business phone number (digits; it goes into the URL path). */
  phone_number_id: z.string().regex(/^\d{1,32}$/, "expected the number's id (digits)"),
  /** A system-user or temporary access token with whatsapp_business_messaging. */
  access_token: z.string().min(1).max(2048),
  /** The Meta app's secret: it signs the callbacks (X-Hub-Signature-256). */
  app_secret: z.string().min(1).max(256),
  /**
   * What the user types in Meta's webhook settings; Meta sends it back when verifying. When
   * absent one is made at connect (and update) and answered once, to paste there.
   */
  verify_token: z.string().min(1).max(256).optional(),
  /** The number as people see it (`+1 555 010 0001`), shown in responses. */
  display_phone_number: z.string().min(1).max(40).optional(),
  /** The Graph API version (`v21.0`); it goes into the URL path. */
  api_version: z.string().regex(/^v\d{1,3}\.\d{1,2}$/, "expected a version like v21.0")
    .default(DEFAULT_WHATSAPP_API_VERSION),
});
export type WhatsAppCredentials = z.output<typeof whatsappCredentials>;

/** What responses may show of a connected number. */
export interface WhatsAppPublic {
  phone_number_id: string;
  display_phone_number: string | null;
  /** The business name Meta verified, when `test` asked WhatsApp. */
  verified_name?: string | null;
}

/** The receiver's secrets: what checks Meta's verification and callbacks. */
export interface WhatsAppReceiverSecrets {
  app_secret: string;
  verify_token: string;
}

// ---------------------------------------------------------------------------------------
// Recipients
// ---------------------------------------------------------------------------------------

/** What people write between digits: `+34 612 345 678`, `+1 (555) 010-0001`, `+44.20…`. */
const PHONE_SEPARATORS = /[ \u00a0.\-()]/g;
/** E.164: a `+`, a country code not starting with 0, 8 to 15 digits in all. */
const E164 = /^\+([1-9]\d{7,14})$/;

/**
 * The recipient as WhatsApp wants it (E.164 digits without the `+`), or a VALIDATION_ERROR
 * naming `to`.
 */
export function normalizeWhatsAppRecipient(to: string): string {
  const match = typeof to === "string" ? to.replace(PHONE_SEPARATORS, "").match(E164) : null;
  if (!match) {
    throw new ApiError(
      "VALIDATION_ERROR",
      "The 'to' field is invalid: WhatsApp needs a phone number in E.164 format, a '+' and " +
        "8 to 15 digits with the country code (+34 612 345 678).",
      { details: { field: "to", constraint: "e164" } },
    );
  }
  return match[1];
}

// ---------------------------------------------------------------------------------------
// The Cloud API client
// ---------------------------------------------------------------------------------------

/**
 * WhatsApp's error codes after which trying again later may work: rate limits (4, 80007,
 * 130429 throughput, 131056 pair rate limit) and Meta's temporary failures (1, 2, 131000,
 * 131016, 133004). Everything else (a bad token, a bad parameter, outside the 24-hour
 * window, an undeliverable number) fails the same way again.
 */
const RETRYABLE_CODES = new Set([1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004]);
/** Graph API's code for an access token that expired or was revoked (OAuthException). */
const INVALID_ACCESS_TOKEN = 190;

/** The Graph API's error answer. */
const graphErrorBody = z.looseObject({
  error: z.looseObject({
    message: z.string().optional(),
    code: z.union([z.number(), z.string()]).optional(),
    error_subcode: z.number().optional(),
    error_data: z.looseObject({ details: z.string().optional() }).optional(),
  }),
});

const sendAnswer = z.looseObject({
  messages: z.array(z.looseObject({ id: z.string().min(1) })).min(1),
});

const phoneNumberAnswer = z.looseObject({
  display_phone_number: z.string().optional(),
  verified_name: z.string().optional(),
});

type Fetch = ReturnType<typeof guardedFetch>;
let fetchThroughGuard: Fetch | undefined;

/**
 * One call to the Cloud API: its JSON answer when 2xx, else a ChannelError with WhatsApp's
 * code and message. Network failures and timeouts are ChannelErrors too (code null).
 */
async function callCloudApi(
  credentials: WhatsAppCredentials,
  request: { method: "GET" | "POST"; path: string; body?: unknown; signal?: AbortSignal },
): Promise<unknown> {
  fetchThroughGuard ??= guardedFetch({ timeoutMs: REQUEST_TIMEOUT_MS });
  const url = `${config.whatsappApiBaseUrl}/${credentials.api_version}/` +
    `${credentials.phone_number_id}${request.path}`;
  const deadline = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const signal = request.signal ? AbortSignal.any([request.signal, deadline]) : deadline;
  let status: number;
  let text: string;
  try {
    const response = await fetchThroughGuard(url, {
      method: request.method,
      headers: {
        authorization: `Bearer ${credentials.access_token}`,
        ...(request.body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
      signal,
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    throw networkFailure(error, request.signal);
  }
  let answer: unknown = null;
  try {
    answer = JSON.parse(text);
  } catch {
    // judged below by its status
  }
  if (status >= 200 && status < 300 && answer !== null) return answer;
  const refusal = graphErrorBody.safeParse(answer);
  if (!refusal.success) {
    throw new ChannelError(
      "whatsapp",
      null,
      `WhatsApp answered HTTP ${status} without an error body.`,
      status >= 500 || status === 429,
    );
  }
  const { message, code, error_data } = refusal.data.error;
  const numericCode = typeof code === "string" && /^\d+$/.test(code) ? Number(code) : code;
  const details = error_data?.details;
  throw new ChannelError(
    "whatsapp",
    numericCode ?? null,
    [message ?? `HTTP ${status}`, details && details !== message ? details : null]
      .filter(Boolean).join(": "),
    status >= 500 || (typeof numericCode === "number" && RETRYABLE_CODES.has(numericCode)),
    numericCode === INVALID_ACCESS_TOKEN,
  );
}

/**
 * A call that got no answer. A connection that failed before anything was sent may be tried
 * again; after a timeout or a cancellation WhatsApp may have accepted the message, so it is
 * not marked retryable (sending again could deliver it twice).
 */
function networkFailure(error: unknown, callerSignal: AbortSignal | undefined): ChannelError {
  if (callerSignal?.aborted) {
    return new ChannelError(
      "whatsapp",
      null,
      "The request was cancelled before WhatsApp answered; it may have been accepted.",
      false,
    );
  }
  if (error instanceof OutboundBlockedError) {
    return new ChannelError("whatsapp", null, error.message, false);
  }
  const name = (error as Error)?.name;
  const timedOut = name === "TimeoutError" || name === "AbortError" ||
    (error instanceof OutboundNetworkError && error.kind === "timeout");
  if (timedOut) {
    return new ChannelError(
      "whatsapp",
      null,
      `WhatsApp did not answer within ${REQUEST_TIMEOUT_MS} ms; the message may have been accepted.`,
      false,
    );
  }
  const message = error instanceof OutboundNetworkError
    ? error.message
    : "WhatsApp could not be reached.";
  return new ChannelError("whatsapp", null, message, true);
}

/** The `messages` request body for a text or a template. */
function messageRequest(message: {
  to: string;
  type: "text" | "template";
  body?: string;
  template?: { name: string; language: string; components?: unknown[] };
}) {
  const base = { messaging_product: "whatsapp", recipient_type: "individual", to: message.to };
  if (message.type === "template") {
    const template = message.template;
    if (!template?.name || !template.language) {
      throw new ApiError(
        "VALIDATION_ERROR",
        "The 'message.template' field is required for a WhatsApp template: its name and language.",
        { details: { field: "message.template", constraint: "required" } },
      );
    }
    return {
      ...base,
      type: "template",
      template: {
        name: template.name,
        language: { code: template.language },
        ...(template.components?.length ? { components: template.components } : {}),
      },
    };
  }
  const body = message.body ?? "";
  if (body.length === 0) {
    throw new ApiError("VALIDATION_ERROR", "The 'message.body' field is required.", {
      details: { field: "message.body", constraint: "required" },
    });
  }
  // WhatsApp counts characters, not UTF-16 units: an emoji is one.
  if ([...body].length > WHATSAPP_TEXT_LIMIT) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `The 'message.body' field is invalid: WhatsApp takes at most ${WHATSAPP_TEXT_LIMIT} characters.`,
      { details: { field: "message.body", constraint: "max", max: WHATSAPP_TEXT_LIMIT } },
    );
  }
  return { ...base, type: "text", text: { preview_url: false, body } };
}

// ---------------------------------------------------------------------------------------
// Inbound: Meta's callbacks
// ---------------------------------------------------------------------------------------

/** One update of a callback, as the receiver kind hands it to `handle`. */
export type WhatsAppUpdate =
  | { type: "message"; message: InboundMessage }
  | { type: "status"; update: StatusUpdate };

const inboundMessage = z.looseObject({
  id: z.string().min(1),
  from: z.string().min(1),
  timestamp: z.string().optional(),
  type: z.string().min(1),
});

const statusEntry = z.looseObject({
  id: z.string().min(1),
  status: z.string().min(1),
  timestamp: z.string().optional(),
  recipient_id: z.string().optional(),
  errors: z.array(z.looseObject({
    code: z.union([z.number(), z.string()]).optional(),
    title: z.string().optional(),
    message: z.string().optional(),
    error_data: z.looseObject({ details: z.string().optional() }).optional(),
  })).optional(),
});

/** The envelope Meta posts: `entry[].changes[]`, each with a `field` and a `value`. */
const callbackBody = z.looseObject({
  object: z.string(),
  entry: z.array(z.looseObject({
    changes: z.array(z.looseObject({
      field: z.string(),
      value: z.looseObject({
        metadata: z.looseObject({
          display_phone_number: z.string().optional(),
          phone_number_id: z.string().optional(),
        }).optional(),
        contacts: z.array(z.looseObject({
          wa_id: z.string().optional(),
          profile: z.looseObject({ name: z.string().optional() }).optional(),
        })).optional(),
        messages: z.array(inboundMessage).optional(),
        statuses: z.array(statusEntry).optional(),
      }).optional(),
    })).optional(),
  })),
});

const STATUSES = new Set<StatusUpdate["status"]>(["sent", "delivered", "read", "failed"]);
const MEDIA_TYPES = new Set(["image", "video", "audio", "document", "sticker"]);

/** Meta's `timestamp` (Unix seconds as text); now when absent or not a number. */
function timeOf(timestamp: string | undefined): Date {
  const seconds = Number(timestamp);
  return timestamp && Number.isFinite(seconds) ? new Date(seconds * 1000) : new Date();
}

// deno-lint-ignore no-explicit-any
type Loose = Record<string, any>;

/**
 * The text stored for an inbound message: a text's body; for anything else a placeholder
 * naming its type (`[image]`) with the caption, reply or emoji it carries (media itself is
 * not downloaded).
 */
export function inboundBody(message: Loose): string {
  const type = String(message.type);
  const content: Loose = message[type] && typeof message[type] === "object" ? message[type] : {};
  const text = (value: unknown) => (typeof value === "string" ? value : "");
  switch (type) {
    case "text":
      return text(content.body);
    case "button": // a template's quick-reply button
      return text(content.text) || "[button]";
    case "interactive": {
      const reply = content.button_reply ?? content.list_reply ?? {};
      return text(reply.title) || "[interactive]";
    }
    case "reaction":
      return content.emoji ? `[reaction] ${text(content.emoji)}` : "[reaction removed]";
    case "location": {
      const place = [text(content.name), text(content.address)].filter(Boolean).join(", ");
      const at = `${content.latitude},${content.longitude}`;
      return `[location] ${place ? `${place} ` : ""}(${at})`;
    }
    default: {
      const caption = MEDIA_TYPES.has(type) ? text(content.caption) || text(content.filename) : "";
      return caption ? `[${type}] ${caption}` : `[${type}]`;
    }
  }
}

const digitsOf = (phone: string) => phone.replace(/\D/g, "");

/**
 * The updates of one callback body: its messages and statuses (a callback may batch
 * several). A status's provider id is `status:<wamid>:<status>`, so each transition of a
 * message is deduplicated on its own.
 */
export function parseWhatsAppCallback(rawBody: Uint8Array): ReceivedItem<WhatsAppUpdate>[] {
  const body = validate(callbackBody, parseJsonBody(rawBody), "body");
  const items: ReceivedItem<WhatsAppUpdate>[] = [];
  for (const entry of body.entry) {
    for (const change of entry.changes ?? []) {
      // Other fields (template reviews, account updates) carry no messages.
      if (change.field !== "messages" || !change.value) continue;
      const { metadata, contacts = [], messages = [], statuses = [] } = change.value;
      const businessNumber = digitsOf(metadata?.display_phone_number ?? "") ||
        (metadata?.phone_number_id ?? "");
      for (const message of messages) {
        const contact = contacts.find((c) => c.wa_id === message.from) ??
          (contacts.length === 1 ? contacts[0] : undefined);
        const name = contact?.profile?.name;
        items.push({
          providerId: message.id,
          payload: {
            type: "message",
            message: {
              channel: "whatsapp",
              providerMessageId: message.id,
              from: digitsOf(message.from),
              ...(name ? { fromName: name } : {}),
              to: businessNumber,
              body: inboundBody(message),
              receivedAt: timeOf(message.timestamp),
            },
          },
        });
      }
      for (const status of statuses) {
        const value = status.status as StatusUpdate["status"];
        // Others (`deleted`, `warning`) move nothing BiVelio tracks.
        if (!STATUSES.has(value)) continue;
        const error = status.errors?.[0];
        items.push({
          providerId: `status:${status.id}:${value}`,
          payload: {
            type: "status",
            update: {
              channel: "whatsapp",
              providerMessageId: status.id,
              status: value,
              at: timeOf(status.timestamp),
              ...(error
                ? {
                  error: {
                    code: error.code ?? null,
                    message: error.error_data?.details ?? error.message ?? error.title ??
                      "WhatsApp reported a failure.",
                  },
                }
                : {}),
            },
          },
        });
      }
    }
  }
  return items;
}

export const whatsappReceiverKind = defineReceiverKind<WhatsAppReceiverSecrets, WhatsAppUpdate>({
  kind: "whatsapp",
  verify({ url, secrets }) {
    const token = url.searchParams.get("hub.verify_token") ?? "";
    if (
      url.searchParams.get("hub.mode") !== "subscribe" ||
      !timingSafeEqualText(token, secrets.verify_token)
    ) {
      throw invalidSignature();
    }
    const challenge = url.searchParams.get("hub.challenge");
    if (!challenge) throw malformedBody("The verification has no hub.challenge.");
    return new Response(challenge, { headers: { "content-type": "text/plain; charset=utf-8" } });
  },
  authenticate({ headers, rawBody, secrets }) {
    const expected = `sha256=${hmacSha256Hex(secrets.app_secret, rawBody)}`;
    return timingSafeEqualText(headers.get("x-hub-signature-256") ?? "", expected);
  },
  parse: (rawBody) => parseWhatsAppCallback(rawBody),
  async handle(tx, item, receiver) {
    const update = item.payload;
    if (update.type === "message") await recordInbound(tx, receiver, update.message);
    else await recordStatus(tx, receiver, update.update);
  },
});

// ---------------------------------------------------------------------------------------
// The channel
// ---------------------------------------------------------------------------------------

/** A verify token for Meta's webhook settings, when the user gave none. */
const newVerifyToken = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

export const whatsapp = defineChannel<WhatsAppCredentials, WhatsAppPublic>({
  channel: "whatsapp",
  credentials: whatsappCredentials,
  publicPart: (credentials) => ({
    phone_number_id: credentials.phone_number_id,
    display_phone_number: credentials.display_phone_number ?? null,
  }),
  normalizeRecipient: normalizeWhatsAppRecipient,
  async send(credentials, message, options) {
    const answer = await callCloudApi(credentials, {
      method: "POST",
      path: "/messages",
      body: messageRequest(message),
      signal: options.signal,
    });
    const accepted = sendAnswer.safeParse(answer);
    if (!accepted.success) {
      throw new ChannelError("whatsapp", null, "WhatsApp's answer has no message id.", false);
    }
    return {
      providerMessageId: accepted.data.messages[0].id,
      from: credentials.display_phone_number ?? credentials.phone_number_id,
    };
  },
  async test(credentials, options) {
    const answer = phoneNumberAnswer.safeParse(
      await callCloudApi(credentials, {
        method: "GET",
        path: "?fields=display_phone_number,verified_name",
        signal: options.signal,
      }),
    );
    const number = answer.success ? answer.data : {};
    return {
      phone_number_id: credentials.phone_number_id,
      display_phone_number: number.display_phone_number ?? credentials.display_phone_number ??
        null,
      verified_name: number.verified_name ?? null,
    };
  },
  receiverSecrets: (credentials): WhatsAppReceiverSecrets => ({
    app_secret: credentials.app_secret,
    verify_token: credentials.verify_token ?? newVerifyToken(),
  }),
  receiverKind: whatsappReceiverKind,
});
