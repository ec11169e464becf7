/**
 * A local Telegram Bot API stand-in (local only, never deployed), so the real client in
 * shared/messages/channels/telegram.ts is used as it is and `deno task start` works without
 * a bot:
 *
 * - `POST|GET /bot<token>/<method>` with parameters as JSON, a form or the query string, and
 *   the Bot API's answers `{ok: true, result}` / `{ok: false, error_code, description}`:
 *   `getMe`, `sendMessage` (1-4096 characters; message ids counted per chat),
 *   `setWebhook` (remembers url, secret_token and allowed_updates per bot),
 *   `deleteWebhook`, `getWebhookInfo`; an unknown token is 401 "Unauthorized", an unknown
 *   method 404 "Not Found", an unknown chat 400 "Bad Request: chat not found".
 * - Bots: the demo bots ({@link DEMO_BOTS}, fixed fake tokens for the demo organizations'
 *   integrations) and any made with `POST /_standin/bots {"username"?, "first_name"?}`
 *   (answers the bot and its token: tests make their own so they never share one).
 * - Chats: a few known ones ({@link KNOWN_CHATS}: 100200300 "Demo Customer", a group, a
 *   channel); a user who writes to a bot (`/_standin/inbound`) becomes a known chat too.
 *
 * Control (for tests and local testers):
 * - `POST /_standin/script {"bot_id"?, "answers": [...]}`: each following Bot API call of that
 *   bot (any bot without `bot_id`) takes the next answer: `{"error_code", "description"?,
 *   "retry_after"?}` (a Bot API error; 429 gets `parameters.retry_after` and Telegram's
 *   "Too Many Requests: retry after N"; 403 "Forbidden: bot was blocked by the user"),
 *   `{"http_status", "body"}` (a body that is not the Bot API's: a proxy's 502),
 *   `{"delay_ms"}` (alone or with another); `"method"` limits an answer to that method;
 * - `GET /_standin/requests?bot_id=…`: every call (bot id, method, parameters, answer
 *   status), never a token; `POST /_standin/reset {"bot_id"?}` forgets calls and scripts;
 * - `POST /_standin/inbound {"bot_token"?, "bot_id"?, "chat_id", "from_id"?, "name"?,
 *   "username"?, "text"?, "photo"?, "update_id"?}`: makes an Update as a user writing to the
 *   bot would (default the first demo bot; `from_id` defaults to `chat_id`; `photo: true`
 *   sends a photo with `text` as its caption; `update_id` repeats an earlier update, as
 *   Telegram does when it delivers again) and POSTs it to the webhook set for that bot with
 *   its secret token in `X-Telegram-Bot-Api-Secret-Token`. Answers the update and the
 *   webhook's status and body.
 *
 * Run by local/stack.ts (env: PORT, and TELEGRAM_STATE_FILE where it keeps its bots, chats
 * and webhooks across restarts); tests may also start one in-process with
 * {@link createTelegramStandIn}.
 */
import { postToReceiver } from "./post-to-receiver.ts";

export interface StandInBot {
  id: number;
  token: string;
  username: string;
  first_name: string;
}

/**
 * The demo organizations' bots. Their tokens are fake and known only to this stand-in (the
 * shape of real ones, so the channel's checks pass).
 */
export const DEMO_BOTS: StandInBot[] = [
  {
    id: 7000000001,
    token: "7000000001:AAStandInAcmeDemoBotToken0000000001",
    username: "acme_demo_bot",
    first_name: "Acme Demo",
  },
  {
    id: 7000000002,
    token: "7000000002:AAStandInGlobexDemoBotToken00000002",
    username: "globex_demo_bot",
    first_name: "Globex Demo",
  },
];

export interface StandInChat {
  id: number;
  type: "private" | "group" | "supergroup" | "channel";
  /** private chats */
  first_name?: string;
  last_name?: string;
  username?: string;
  /** groups and channels */
  title?: string;
}

/** Chats every bot can write to. */
export const KNOWN_CHATS: StandInChat[] = [
  { id: 100200300, type: "private", first_name: "Demo", last_name: "Customer" },
  { id: -1001234567890, type: "supergroup", title: "Demo Group" },
  { id: -1009876543210, type: "channel", title: "BiVelio Demo", username: "bivelio_demo" },
];

interface ScriptedAnswer {
  method?: string;
  error_code?: number;
  description?: string;
  retry_after?: number;
  http_status?: number;
  body?: string;
  delay_ms?: number;
}

export interface RecordedCall {
  at: string;
  /** The bot the token names (its id part), whether or not the token was right. */
  bot_id: string | null;
  token_accepted: boolean;
  method: string;
  parameters: Record<string, unknown>;
  status: number;
}

interface Webhook {
  url: string;
  secret_token: string | null;
  allowed_updates: string[];
}

const DEFAULT_DESCRIPTIONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden: bot was blocked by the user",
  404: "Not Found",
  500: "Internal Server Error",
  502: "Bad Gateway",
};

const MAX_RECORDED = 1000;
const SECRET_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Bot API's error answer. */
function botError(code: number, description: string, retryAfter?: number) {
  return Response.json({
    ok: false,
    error_code: code,
    description,
    ...(retryAfter === undefined ? {} : { parameters: { retry_after: retryAfter } }),
  }, { status: code });
}

const ok = (result: unknown, description?: string) =>
  Response.json({ ok: true, result, ...(description ? { description } : {}) });

/** Parameters as the Bot API takes them: query string, then a JSON or form body. */
async function parametersOf(request: Request, url: URL): Promise<Record<string, unknown>> {
  const parameters: Record<string, unknown> = Object.fromEntries(url.searchParams);
  const type = request.headers.get("content-type") ?? "";
  const text = await request.text();
  if (!text) return parameters;
  if (type.includes("application/json")) {
    const body = JSON.parse(text);
    if (typeof body === "object" && body !== null) Object.assign(parameters, body);
  } else if (type.includes("application/x-www-form-urlencoded")) {
    for (const [name, value] of new URLSearchParams(text)) {
      try {
        parameters[name] = JSON.parse(value); // arrays such as allowed_updates
      } catch {
        parameters[name] = value;
      }
    }
  }
  return parameters;
}

/** What a state file keeps across restarts (the supervisor's, or `deno task start` again). */
interface SavedState {
  bots: StandInBot[];
  chats: StandInChat[];
  webhooks: [number, Webhook][];
  messageIds: [string, number][];
  updateIds: [number, number][];
}

function readState(path: string): SavedState | null {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return null;
  }
}

/**
 * The stand-in's handler. With `stateFile`, its bots, chats, webhooks and counters are saved
 * there after every POST and read back at start, so a restart keeps the webhooks set.
 */
export function createTelegramStandIn(options: { stateFile?: string } = {}) {
  const saved = options.stateFile ? readState(options.stateFile) : null;
  const bots = new Map<string, StandInBot>(
    [...DEMO_BOTS, ...saved?.bots ?? []].map((bot) => [bot.token, bot]),
  );
  const chats = new Map<string, StandInChat>(
    [...KNOWN_CHATS, ...saved?.chats ?? []].map((chat) => [String(chat.id), chat]),
  );
  const webhooks = new Map<number, Webhook>(saved?.webhooks ?? []);
  /** The last message id per bot and chat. */
  const messageIds = new Map<string, number>(saved?.messageIds ?? []);
  /** The last update id per bot. */
  const updateIds = new Map<number, number>(saved?.updateIds ?? []);
  const save = () => {
    if (!options.stateFile) return;
    const state: SavedState = {
      bots: [...bots.values()],
      chats: [...chats.values()],
      webhooks: [...webhooks],
      messageIds: [...messageIds],
      updateIds: [...updateIds],
    };
    Deno.writeTextFileSync(options.stateFile, JSON.stringify(state));
  };
  /** Updates made, per bot and update id, for deliveries repeated. */
  const updates = new Map<string, unknown>();
  const scripts = new Map<string, ScriptedAnswer[]>();
  let recorded: RecordedCall[] = [];
  let nextBotId = 8000000000 + Math.floor(Math.random() * 1_000_000) * 100;

  const botUser = (bot: StandInBot) => ({
    id: bot.id,
    is_bot: true,
    first_name: bot.first_name,
    username: bot.username,
  });

  function nextScripted(botId: string, method: string) {
    for (const key of [botId, "*"]) {
      const queue = scripts.get(key) ?? [];
      const index = queue.findIndex((answer) => !answer.method || answer.method === method);
      if (index >= 0) return queue.splice(index, 1)[0];
    }
    return null;
  }

  function findChat(chatId: unknown): StandInChat | null {
    if (typeof chatId === "number" || typeof chatId === "string") {
      const key = String(chatId);
      if (key.startsWith("@")) {
        const name = key.slice(1).toLowerCase();
        return [...chats.values()].find((chat) => chat.username?.toLowerCase() === name) ??
          null;
      }
      return chats.get(key) ?? null;
    }
    return null;
  }

  function sendMessage(bot: StandInBot, parameters: Record<string, unknown>) {
    if (parameters.chat_id === undefined || parameters.chat_id === "") {
      return botError(400, "Bad Request: chat_id is empty");
    }
    const text = parameters.text;
    if (typeof text !== "string" || text.trim() === "") {
      return botError(400, "Bad Request: message text is empty");
    }
    if (text.length > 4096) return botError(400, "Bad Request: message is too long");
    const chat = findChat(parameters.chat_id);
    if (!chat) return botError(400, "Bad Request: chat not found");
    const key = `${bot.id}/${chat.id}`;
    const messageId = (messageIds.get(key) ?? 0) + 1;
    messageIds.set(key, messageId);
    return ok({
      message_id: messageId,
      from: botUser(bot),
      chat: chat,
      date: Math.floor(Date.now() / 1000),
      text,
    });
  }

  function setWebhook(bot: StandInBot, parameters: Record<string, unknown>) {
    const url = typeof parameters.url === "string" ? parameters.url : "";
    if (url === "") {
      webhooks.delete(bot.id);
      return ok(true, "Webhook was deleted");
    }
    try {
      const parsed = new URL(url);
      // Telegram wants HTTPS; the stand-in takes http too, for the local stack.
      if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new Error();
    } catch {
      return botError(
        400,
        "Bad Request: bad webhook: Failed to resolve host: Name or service not known",
      );
    }
    const secret = parameters.secret_token;
    if (secret !== undefined && (typeof secret !== "string" || !SECRET_TOKEN.test(secret))) {
      return botError(400, "Bad Request: secret token contains unallowed characters");
    }
    const allowed = Array.isArray(parameters.allowed_updates)
      ? parameters.allowed_updates.map(String)
      : [];
    webhooks.set(bot.id, {
      url,
      secret_token: typeof secret === "string" ? secret : null,
      allowed_updates: allowed,
    });
    return ok(true, "Webhook was set");
  }

  async function botApi(request: Request, url: URL, token: string, method: string) {
    const bot = bots.get(token) ?? null;
    const botId = /^(\d+):/.exec(token)?.[1] ?? null;
    let parameters: Record<string, unknown> = {};
    let response: Response;
    try {
      parameters = await parametersOf(request, url);
    } catch {
      parameters = {};
      response = botError(400, "Bad Request: can't parse JSON object");
    }
    const scripted = bot ? nextScripted(String(bot.id), method) : null;
    if (scripted?.delay_ms) await sleep(scripted.delay_ms);
    response ??= !bot
      ? botError(401, "Unauthorized")
      : scripted?.http_status
      ? new Response(scripted.body ?? "<html><body>Bad Gateway</body></html>", {
        status: scripted.http_status,
        headers: { "content-type": "text/html" },
      })
      : scripted?.error_code
      ? botError(
        scripted.error_code,
        scripted.description ??
          (scripted.error_code === 429
            ? `Too Many Requests: retry after ${scripted.retry_after ?? 5}`
            : DEFAULT_DESCRIPTIONS[scripted.error_code] ?? "Error"),
        scripted.error_code === 429 ? scripted.retry_after ?? 5 : scripted.retry_after,
      )
      : method === "getMe"
      ? ok(botUser(bot))
      : method === "sendMessage"
      ? sendMessage(bot, parameters)
      : method === "setWebhook"
      ? setWebhook(bot, parameters)
      : method === "deleteWebhook"
      ? (webhooks.delete(bot.id), ok(true, "Webhook was deleted"))
      : method === "getWebhookInfo"
      ? ok({
        url: webhooks.get(bot.id)?.url ?? "",
        has_custom_certificate: false,
        pending_update_count: 0,
        allowed_updates: webhooks.get(bot.id)?.allowed_updates ?? [],
      })
      : botError(404, "Not Found");
    recorded.push({
      at: new Date().toISOString(),
      bot_id: botId,
      token_accepted: bot !== null,
      method,
      // The webhook's secret token is a secret too: its length only.
      parameters: typeof parameters.secret_token === "string"
        ? { ...parameters, secret_token: `<${parameters.secret_token.length} characters>` }
        : parameters,
      status: response.status,
    });
    if (recorded.length > MAX_RECORDED) recorded = recorded.slice(-MAX_RECORDED);
    return response;
  }

  function newBot(body: Record<string, unknown>): StandInBot {
    const id = nextBotId++;
    const secret = Array.from(
      crypto.getRandomValues(new Uint8Array(35)),
      (byte) => TOKEN_CHARS[byte % TOKEN_CHARS.length],
    ).join("");
    const bot = {
      id,
      token: `${id}:${secret}`,
      username: typeof body.username === "string" ? body.username : `test_${id}_bot`,
      first_name: typeof body.first_name === "string" ? body.first_name : `Test Bot ${id}`,
    };
    bots.set(bot.token, bot);
    return bot;
  }

  /** Makes an Update (or repeats one) and POSTs it to the bot's webhook, as Telegram does. */
  async function inbound(body: Record<string, unknown>) {
    const bot = typeof body.bot_token === "string"
      ? bots.get(body.bot_token)
      : body.bot_id !== undefined
      ? [...bots.values()].find((candidate) => String(candidate.id) === String(body.bot_id))
      : DEMO_BOTS[0];
    if (!bot) return Response.json({ error: "unknown bot" }, { status: 404 });
    const webhook = webhooks.get(bot.id);
    if (!webhook) {
      return Response.json({ error: "no webhook set for this bot (setWebhook)" }, { status: 409 });
    }
    let update: unknown;
    if (body.update_id !== undefined) {
      update = updates.get(`${bot.id}/${body.update_id}`);
      if (!update) return Response.json({ error: "unknown update_id" }, { status: 404 });
    } else {
      const chatId = Number(body.chat_id);
      if (!Number.isSafeInteger(chatId)) {
        return Response.json({ error: "chat_id must be an integer" }, { status: 400 });
      }
      const fromId = body.from_id === undefined ? chatId : Number(body.from_id);
      const [firstName, ...rest] = String(body.name ?? "Demo Customer").split(" ");
      const from = {
        id: fromId,
        is_bot: false,
        first_name: firstName,
        ...(rest.length ? { last_name: rest.join(" ") } : {}),
        ...(typeof body.username === "string" ? { username: body.username } : {}),
        language_code: "en",
      };
      // A user who writes to the bot is a chat it may answer.
      const chat: StandInChat = chats.get(String(chatId)) ?? {
        id: chatId,
        type: chatId < 0 ? "group" : "private",
        ...(chatId < 0 ? { title: `Group ${-chatId}` } : {
          first_name: from.first_name,
          ...(from.last_name ? { last_name: from.last_name } : {}),
        }),
      };
      chats.set(String(chatId), chat);
      const key = `${bot.id}/${chatId}`;
      const messageId = (messageIds.get(key) ?? 0) + 1;
      messageIds.set(key, messageId);
      const updateId = (updateIds.get(bot.id) ?? 100_000) + 1;
      updateIds.set(bot.id, updateId);
      const text = typeof body.text === "string" ? body.text : "";
      const content = body.photo
        ? {
          photo: [{
            file_id: `photo-${updateId}`,
            file_unique_id: `p${updateId}`,
            width: 90,
            height: 90,
            file_size: 1024,
          }],
          ...(text ? { caption: text } : {}),
        }
        : { text };
      update = {
        update_id: updateId,
        message: {
          message_id: messageId,
          from,
          chat,
          date: Math.floor(Date.now() / 1000),
          ...content,
        },
      };
      updates.set(`${bot.id}/${updateId}`, update);
    }
    const { status, answer } = await postToReceiver(
      webhook.url,
      JSON.stringify(update),
      webhook.secret_token ? { "X-Telegram-Bot-Api-Secret-Token": webhook.secret_token } : {},
    );
    return Response.json({ update, webhook_status: status, webhook_body: answer });
  }

  async function control(request: Request, url: URL): Promise<Response> {
    const action = url.pathname.slice("/_standin/".length);
    if (request.method === "GET" && action === "health") return Response.json({ ok: true });
    if (request.method === "GET" && action === "requests") {
      const botId = url.searchParams.get("bot_id");
      return Response.json({
        requests: botId ? recorded.filter((call) => call.bot_id === botId) : recorded,
      });
    }
    if (request.method === "GET" && action === "webhooks") {
      // Secret tokens left out: a local tester finds them in .bivelio/local.json.
      return Response.json({
        webhooks: [...webhooks].map(([botId, webhook]) => ({
          bot_id: String(botId),
          url: webhook.url,
          allowed_updates: webhook.allowed_updates,
        })),
      });
    }
    if (request.method !== "POST") {
      return Response.json({ error: "unknown stand-in control" }, { status: 404 });
    }
    // deno-lint-ignore no-explicit-any
    const body: Record<string, any> = await request.json().catch(() => ({})) ?? {};
    const botKey = body.bot_id === undefined ? null : String(body.bot_id);
    switch (action) {
      case "bots":
        return Response.json({ bot: newBot(body) });
      case "inbound":
        return await inbound(body);
      case "reset":
        if (botKey) {
          scripts.delete(botKey);
          recorded = recorded.filter((call) => call.bot_id !== botKey);
        } else {
          scripts.clear();
          recorded = [];
        }
        return Response.json({ reset: true });
      case "script": {
        if (!Array.isArray(body.answers)) {
          return Response.json({ error: "answers must be an array" }, { status: 400 });
        }
        const queue = scripts.get(botKey ?? "*") ?? [];
        queue.push(...body.answers);
        scripts.set(botKey ?? "*", queue);
        return Response.json({ queued: queue.length });
      }
    }
    return Response.json({ error: "unknown stand-in control" }, { status: 404 });
  }

  const route = /^\/bot([^/]+)\/([A-Za-z]+)$/;

  return async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const match = url.pathname.match(route);
    const response = url.pathname.startsWith("/_standin/")
      ? await control(request, url)
      : match
      ? await botApi(request, url, decodeURIComponent(match[1]), match[2])
      : botError(404, "Not Found");
    if (request.method === "POST") save();
    return response;
  };
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT"));
  if (!port) throw new Error("PORT must be set");
  const stateFile = Deno.env.get("TELEGRAM_STATE_FILE") || undefined;
  Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    createTelegramStandIn({ stateFile }),
  );
  console.log(`Telegram stand-in listening on http://127.0.0.1:${port}`);
}
