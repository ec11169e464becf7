/**
 * A local WhatsApp Cloud API stand-in (local only, never deployed), speaking the Graph API's
 * wire protocol so the live client (shared/messages/channels/whatsapp.ts) is tested as it is
 * and `deno task start` sends WhatsApp messages without a Meta account:
 *
 * - `POST /{version}/{phone-number-id}/messages` with `Authorization: Bearer <token>`: a text
 *   (`text.body`, 1 to 4096 characters) or a template (`template.name`, `language.code`) to
 *   `to` (8 to 15 digits); answers `{messaging_product, contacts:[{input, wa_id}],
 *   messages:[{id:"wamid.…"}]}` and records the message;
 * - `GET /{version}/{phone-number-id}?fields=…`: the number (display_phone_number,
 *   verified_name, quality_rating, …);
 * - WhatsApp's errors, `{"error":{message, type:"OAuthException", code, error_data:{
 *   messaging_product, details}, fbtrace_id}}`: no or a wrong token is 190 (HTTP 401), an
 *   unknown number 100 with subcode 33, a bad `to` or body 100 (HTTP 400).
 *
 * It knows the numbers in {@link WHATSAPP_STAND_IN_DEMO_NUMBERS}, those given in the env
 * (WHATSAPP_STAND_IN_NUMBERS, a JSON array) and those registered at `POST /_standin/numbers`.
 *
 * Scriptable for tests (queued per phone number id):
 * - `POST /_standin/script {"phone_number_id"?, "errors": [{"code": 131047, "status"?,
 *   "message"?, "details"?, "delay_ms"?}, …]}`: each send for that number (any number without
 *   `phone_number_id`) takes the next entry; `{"delay_ms": n}` alone only delays;
 * - `GET /_standin/requests?phone_number_id=…`: what was received (method, path, body,
 *   headers without the token, whether the token was right, the answer's status);
 * - `GET /_standin/messages?phone_number_id=…`: the messages accepted;
 * - `POST /_standin/reset {"phone_number_id"?}` forgets scripts, requests and messages.
 *
 * Delivering to the stack's receivers (a WhatsApp webhook, signed with the app secret as
 * Meta signs: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`):
 * - `POST /_standin/inbound {receiver_url, app_secret, phone_number_id, from, name?, text?,
 *   type?, message_id?, timestamp?, signature?}`: a customer's message (`type` other than
 *   text, e.g. `image`, sends that type without media); `signature` overrides the header
 *   (`""` sends none), for negative tests;
 * - `POST /_standin/status {receiver_url, app_secret, phone_number_id, message_id, status,
 *   recipient_id?, error?: {code, title, details}}`: a status callback (sent, delivered, read,
 *   failed).
 *   Both answer `{status, body, payload}`: the receiver's answer and what was posted.
 * - A number registered with `webhook: {receiver_url, app_secret}` gets `sent` then
 *   `delivered` callbacks by itself after each accepted message (in the background; see
 *   `GET /_standin/deliveries`).
 *
 * Run by local/stack.ts (env: PORT); tests may also start one in-process with
 * {@link createWhatsAppStandIn}.
 */
import { postToReceiver } from "./post-to-receiver.ts";
import { createHmac } from "node:crypto";

export interface StandInNumber {
  phone_number_id: string;
  access_token: string;
  display_phone_number: string;
  verified_name: string;
  /** Where `sent`/`delivered` callbacks go after each accepted message, if anywhere. */
  webhook?: { receiver_url: string; app_secret: string };
}

/**
 * The numbers the local stack's demo integrations use (local only: these tokens reach
 * nothing but this stand-in).
 */
export const WHATSAPP_STAND_IN_DEMO_NUMBERS: readonly StandInNumber[] = [
  {
    phone_number_id: "100000000000001",
    access_token: "standin-whatsapp-token-acme",
    display_phone_number: "+1 555-010-0001",
    verified_name: "Acme Robotics",
  },
  {
    phone_number_id: "100000000000002",
    access_token: "standin-whatsapp-token-bistro",
    display_phone_number: "+1 555-010-0002",
    verified_name: "Bistro Verde",
  },
];

export interface ScriptedError {
  code?: number;
  /** HTTP status; by default the one WhatsApp uses for the code. */
  status?: number;
  message?: string;
  details?: string;
  delay_ms?: number;
}

export interface RecordedRequest {
  at: string;
  method: string;
  path: string;
  phone_number_id: string | null;
  /** Request headers, the token left out. */
  headers: Record<string, string>;
  tokenAccepted: boolean;
  // deno-lint-ignore no-explicit-any
  body: any;
  /** Null while the stand-in holds the request (a scripted delay). */
  answerStatus: number | null;
}

export interface AcceptedMessage {
  id: string;
  at: string;
  phone_number_id: string;
  to: string;
  type: "text" | "template";
  // deno-lint-ignore no-explicit-any
  text?: any;
  // deno-lint-ignore no-explicit-any
  template?: any;
}

interface Delivery {
  at: string;
  receiver_url: string;
  kind: "inbound" | "status";
  status: number | null;
  body: unknown;
}

/** WhatsApp's usual messages and HTTP statuses for the codes the stand-in is asked for. */
const KNOWN_ERRORS: Record<number, { status: number; message: string; details?: string }> = {
  1: { status: 500, message: "An unknown error occurred" },
  2: { status: 503, message: "Service temporarily unavailable" },
  4: { status: 429, message: "(#4) Application request limit reached" },
  100: { status: 400, message: "(#100) Invalid parameter" },
  190: { status: 401, message: "Invalid OAuth access token - Cannot parse access token" },
  130429: {
    status: 429,
    message: "(#130429) Rate limit hit",
    details: "Cloud API message throughput has been reached.",
  },
  131000: { status: 500, message: "(#131000) Something went wrong" },
  131026: {
    status: 400,
    message: "(#131026) Message Undeliverable",
    details: "Unable to deliver message. The recipient may not be a WhatsApp user.",
  },
  131047: {
    status: 400,
    message: "(#131047) Re-engagement message",
    details:
      "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
  },
  131056: {
    status: 429,
    message: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    details: "Too many messages sent from the sender phone number to the same recipient phone " +
      "number in a short period of time.",
  },
  132001: {
    status: 404,
    message: "(#132001) Template name does not exist in the translation",
    details: "template name does not exist in the language",
  },
};

const MAX_RECORDED = 1000;
const TEXT_LIMIT = 4096;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const randomHex = (bytes: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

/** WhatsApp's error answer. */
function graphError(
  code: number,
  options: { status?: number; message?: string; details?: string; subcode?: number } = {},
) {
  const known = KNOWN_ERRORS[code];
  const details = options.details ?? known?.details;
  return Response.json({
    error: {
      message: options.message ?? known?.message ?? `(#${code}) Request failed`,
      type: "OAuthException",
      code,
      ...(options.subcode ? { error_subcode: options.subcode } : {}),
      ...(details ? { error_data: { messaging_product: "whatsapp", details } } : {}),
      fbtrace_id: `A${randomHex(11)}`,
    },
  }, { status: options.status ?? known?.status ?? 400 });
}

/** A `wamid.` id as WhatsApp's look (base64 of an opaque value). */
const newWamid = () => `wamid.${btoa(`standin-${randomHex(16)}`).replaceAll("=", "")}`;

/** The body Meta posts to a webhook for one change of the `messages` field. */
function webhookBody(
  number: Pick<StandInNumber, "phone_number_id" | "display_phone_number">,
  value: object,
) {
  return {
    object: "whatsapp_business_account",
    entry: [{
      id: "100000000000000",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: {
            display_phone_number: number.display_phone_number.replace(/\D/g, ""),
            phone_number_id: number.phone_number_id,
          },
          ...value,
        },
      }],
    }],
  };
}

const sign = (appSecret: string, body: string) =>
  `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`;

export function createWhatsAppStandIn(options: { numbers?: StandInNumber[] } = {}) {
  const numbers = new Map<string, StandInNumber>();
  for (const number of [...WHATSAPP_STAND_IN_DEMO_NUMBERS, ...(options.numbers ?? [])]) {
    numbers.set(number.phone_number_id, { ...number });
  }
  const scripts = new Map<string, ScriptedError[]>();
  let requests: RecordedRequest[] = [];
  let messages: AcceptedMessage[] = [];
  let deliveries: Delivery[] = [];

  const keep = <T>(list: T[]) => (list.length > MAX_RECORDED ? list.slice(-MAX_RECORDED) : list);
  const nextScripted = (id: string) => scripts.get(id)?.shift() ?? scripts.get("*")?.shift();

  /** POSTs a signed webhook body to a receiver and records what it answered. */
  async function deliver(
    kind: Delivery["kind"],
    target: { receiver_url: string; app_secret: string; signature?: string },
    payload: object,
  ) {
    const body = JSON.stringify(payload);
    const signature = target.signature ?? sign(target.app_secret, body);
    const { status, answer } = await postToReceiver(
      target.receiver_url,
      body,
      signature ? { "x-hub-signature-256": signature } : {},
    );
    deliveries = keep([...deliveries, {
      at: new Date().toISOString(),
      receiver_url: target.receiver_url,
      kind,
      status,
      body: answer,
    }]);
    return { status, body: answer, payload };
  }

  /** The number a control request names, known or described in the request itself. */
  // deno-lint-ignore no-explicit-any
  const numberFor = (input: any) =>
    numbers.get(String(input.phone_number_id)) ?? {
      phone_number_id: String(input.phone_number_id ?? "100000000000000"),
      display_phone_number: String(input.display_phone_number ?? input.phone_number_id ?? ""),
    };

  // deno-lint-ignore no-explicit-any
  function statusPayload(input: any) {
    const value = {
      statuses: [{
        id: input.message_id,
        status: input.status,
        timestamp: String(input.timestamp ?? Math.floor(Date.now() / 1000)),
        recipient_id: input.recipient_id ?? "34612345678",
        ...(input.status === "failed" || input.error
          ? {
            errors: [{
              code: input.error?.code ?? 131026,
              title: input.error?.title ?? "Message undeliverable",
              message: input.error?.title ?? "Message undeliverable",
              error_data: { details: input.error?.details ?? "Message Undeliverable." },
            }],
          }
          : {}),
      }],
    };
    return webhookBody(numberFor(input), value);
  }

  // deno-lint-ignore no-explicit-any
  function inboundPayload(input: any) {
    const type = typeof input.type === "string" ? input.type : "text";
    const from = String(input.from ?? "34612345678").replace(/\D/g, "");
    const content = type === "text"
      ? { text: { body: String(input.text ?? "") } }
      : { [type]: input.content ?? (input.text ? { caption: input.text } : {}) };
    const value = {
      contacts: [{ profile: { name: String(input.name ?? "WhatsApp user") }, wa_id: from }],
      messages: [{
        from,
        id: input.message_id ?? newWamid(),
        timestamp: String(input.timestamp ?? Math.floor(Date.now() / 1000)),
        type,
        ...content,
      }],
    };
    return webhookBody(numberFor(input), value);
  }

  const filterBy = <T extends { phone_number_id: string | null }>(list: T[], url: URL) => {
    const id = url.searchParams.get("phone_number_id");
    return id ? list.filter((entry) => entry.phone_number_id === id) : list;
  };

  async function control(request: Request, url: URL): Promise<Response> {
    const action = url.pathname.slice("/_standin/".length);
    if (request.method === "GET") {
      if (action === "health") return Response.json({ ok: true });
      if (action === "requests") return Response.json({ requests: filterBy(requests, url) });
      if (action === "messages") return Response.json({ messages: filterBy(messages, url) });
      if (action === "deliveries") return Response.json({ deliveries });
      if (action === "numbers") {
        return Response.json({
          numbers: [...numbers.values()].map(({ access_token: _, webhook: __, ...rest }) => rest),
        });
      }
    }
    if (request.method !== "POST") return Response.json({ error: "unknown" }, { status: 404 });
    const body = await request.json().catch(() => null);
    if (body === null || typeof body !== "object") {
      return Response.json({ error: "a JSON object is expected" }, { status: 400 });
    }
    const scope = typeof body.phone_number_id === "string" ? body.phone_number_id : null;
    switch (action) {
      case "numbers": {
        const fields = ["phone_number_id", "access_token"];
        if (!fields.every((field) => typeof body[field] === "string" && body[field])) {
          return Response.json({ error: "phone_number_id and access_token" }, { status: 400 });
        }
        const number: StandInNumber = {
          phone_number_id: body.phone_number_id,
          access_token: body.access_token,
          display_phone_number: body.display_phone_number ?? `+${body.phone_number_id}`,
          verified_name: body.verified_name ?? "Stand-in business",
          ...(body.webhook ? { webhook: body.webhook } : {}),
        };
        numbers.set(number.phone_number_id, number);
        return Response.json({ registered: number.phone_number_id });
      }
      case "script": {
        if (!Array.isArray(body.errors)) {
          return Response.json({ error: "errors must be an array" }, { status: 400 });
        }
        const queue = scripts.get(scope ?? "*") ?? [];
        queue.push(...body.errors);
        scripts.set(scope ?? "*", queue);
        return Response.json({ queued: queue.length });
      }
      case "reset": {
        if (scope) {
          scripts.delete(scope);
          requests = requests.filter((entry) => entry.phone_number_id !== scope);
          messages = messages.filter((entry) => entry.phone_number_id !== scope);
        } else {
          scripts.clear();
          requests = [];
          messages = [];
          deliveries = [];
        }
        return Response.json({ reset: true });
      }
      case "inbound":
      case "status": {
        if (typeof body.receiver_url !== "string" || typeof body.app_secret !== "string") {
          return Response.json({ error: "receiver_url and app_secret" }, { status: 400 });
        }
        if (action === "status" && (!body.message_id || !body.status)) {
          return Response.json({ error: "message_id and status" }, { status: 400 });
        }
        const payload = action === "inbound" ? inboundPayload(body) : statusPayload(body);
        return Response.json(await deliver(action, body, payload));
      }
    }
    return Response.json({ error: "unknown stand-in control" }, { status: 404 });
  }

  /** After an accepted message: `sent`, then `delivered`, to the number's webhook. */
  async function reportProgress(number: StandInNumber, message: AcceptedMessage) {
    if (!number.webhook) return;
    for (const status of ["sent", "delivered"]) {
      await deliver(
        "status",
        number.webhook,
        statusPayload({ ...number, message_id: message.id, status, recipient_id: message.to }),
      );
    }
  }

  // deno-lint-ignore no-explicit-any
  function checkMessage(body: any): string | null {
    if (body?.messaging_product !== "whatsapp") return "messaging_product must be 'whatsapp'";
    if (typeof body.to !== "string" || !/^\+?\d{8,15}$/.test(body.to)) {
      return "The parameter to is not a valid phone number";
    }
    if (body.type === "text") {
      const text = body.text?.body;
      if (typeof text !== "string" || text.length === 0) return "text.body is required";
      if ([...text].length > TEXT_LIMIT) return `text.body is longer than ${TEXT_LIMIT}`;
      return null;
    }
    if (body.type === "template") {
      if (typeof body.template?.name !== "string" || !body.template.name) {
        return "template.name is required";
      }
      if (typeof body.template.language?.code !== "string") {
        return "template.language.code is required";
      }
      if (body.template.components !== undefined && !Array.isArray(body.template.components)) {
        return "template.components must be an array";
      }
      return null;
    }
    return `Unsupported message type: ${body.type}`;
  }

  async function graph(request: Request, url: URL): Promise<Response> {
    const [, version, phoneNumberId, edge, ...rest] = url.pathname.split("/");
    const route = request.method === "POST" && edge === "messages" && rest.length === 0
      ? "messages"
      : request.method === "GET" && edge === undefined
      ? "number"
      : null;
    const token = request.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1] ?? "";
    const headers = Object.fromEntries(
      [...request.headers].filter(([name]) => name !== "authorization"),
    );
    const text = request.method === "POST" ? await request.text() : "";
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // answered below
    }
    const number = numbers.get(phoneNumberId ?? "");
    const tokenAccepted = [...numbers.values()].some((n) => n.access_token === token);
    // Recorded before it is answered, so a test can see a request the stand-in is holding.
    const record: RecordedRequest = {
      at: new Date().toISOString(),
      method: request.method,
      path: url.pathname,
      phone_number_id: phoneNumberId ?? null,
      headers,
      tokenAccepted,
      body,
      answerStatus: null,
    };
    requests = keep([...requests, record]);
    const answer = await (async () => {
      if (!route || !/^v\d+\.\d+$/.test(version ?? "")) {
        return graphError(100, {
          message: `Unknown path components: ${url.pathname}`,
          subcode: 2500,
        });
      }
      if (!token) {
        return graphError(190, { message: "An active access token must be used." });
      }
      if (!tokenAccepted) return graphError(190);
      if (!number || number.access_token !== token) {
        return graphError(100, {
          message: `Unsupported ${request.method.toLowerCase()} request. Object with ID ` +
            `'${phoneNumberId}' does not exist, cannot be loaded due to missing permissions, ` +
            "or does not support this operation.",
          subcode: 33,
        });
      }
      if (route === "number") {
        const all: Record<string, unknown> = {
          verified_name: number.verified_name,
          display_phone_number: number.display_phone_number,
          quality_rating: "GREEN",
          code_verification_status: "VERIFIED",
          platform_type: "CLOUD_API",
          throughput: { level: "STANDARD" },
        };
        const fields = url.searchParams.get("fields")?.split(",").map((f) => f.trim());
        const chosen = fields ? Object.fromEntries(fields.map((f) => [f, all[f]])) : all;
        return Response.json({ ...chosen, id: number.phone_number_id });
      }
      const problem = body === null ? "The request body is not valid JSON" : checkMessage(body);
      if (problem) return graphError(100, { details: problem });
      const scripted = nextScripted(number.phone_number_id);
      if (scripted?.delay_ms) await sleep(scripted.delay_ms);
      if (scripted?.code) return graphError(scripted.code, scripted);
      // deno-lint-ignore no-explicit-any
      const sent = body as any;
      const message: AcceptedMessage = {
        id: newWamid(),
        at: new Date().toISOString(),
        phone_number_id: number.phone_number_id,
        to: sent.to.replace(/^\+/, ""),
        type: sent.type,
        ...(sent.type === "text" ? { text: sent.text } : { template: sent.template }),
      };
      messages = keep([...messages, message]);
      reportProgress(number, message).catch(() => {});
      return Response.json({
        messaging_product: "whatsapp",
        contacts: [{ input: sent.to, wa_id: message.to }],
        messages: [{
          id: message.id,
          ...(sent.type === "template" ? { message_status: "accepted" } : {}),
        }],
      });
    })();
    record.answerStatus = answer.status;
    return answer;
  }

  return async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/_standin/")) return await control(request, url);
    return await graph(request, url);
  };
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT"));
  if (!port) throw new Error("PORT must be set");
  const extra = JSON.parse(Deno.env.get("WHATSAPP_STAND_IN_NUMBERS") ?? "[]");
  const handler = createWhatsAppStandIn({ numbers: extra });
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, handler);
  console.log(`WhatsApp stand-in listening on http://127.0.0.1:${port}`);
}
