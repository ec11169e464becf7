/**
 * Integrations for tests: each test connects its own WhatsApp number, Telegram bot and
 * mailbox at the stack's stand-ins, so scripts and recorded requests never mix between
 * tests.
 */
import assert from "node:assert/strict";
import { api, stack } from "./stack.ts";

const random = () => crypto.randomUUID().replaceAll("-", "").slice(0, 12);

async function standIn(url: string, body?: unknown, method = "POST") {
  const response = await fetch(url, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${url}: ${response.status} ${text}`);
  return JSON.parse(text);
}

export interface WhatsAppNumber {
  phone_number_id: string;
  access_token: string;
  app_secret: string;
  verify_token: string;
  display_phone_number: string;
}

/** A number the WhatsApp stand-in knows, with credentials of its own. */
export async function newWhatsAppNumber(): Promise<WhatsAppNumber> {
  const digits = String(Math.floor(Math.random() * 1e12)).padStart(12, "0");
  const number = {
    phone_number_id: `9${digits}`,
    access_token: `test-token-${random()}`,
    app_secret: `app-secret-${random()}`,
    verify_token: `verify-${random()}`,
    display_phone_number: `+1 555 ${digits.slice(0, 3)} ${digits.slice(3, 7)}`,
  };
  await standIn(`${stack.whatsapp.base_url}/_standin/numbers`, {
    phone_number_id: number.phone_number_id,
    access_token: number.access_token,
    display_phone_number: number.display_phone_number,
    verified_name: "Test business",
  });
  return number;
}

export const whatsappCredentials = (number: WhatsAppNumber) => ({
  phone_number_id: number.phone_number_id,
  access_token: number.access_token,
  app_secret: number.app_secret,
  verify_token: number.verify_token,
  display_phone_number: number.display_phone_number,
});

export interface WhatsAppRequest {
  method: string;
  path: string;
  body: unknown;
  status: number;
}

/** What the WhatsApp stand-in received for a number. */
export async function whatsappRequests(phoneNumberId: string): Promise<WhatsAppRequest[]> {
  const answer = await standIn(
    `${stack.whatsapp.base_url}/_standin/requests?phone_number_id=${phoneNumberId}`,
    undefined,
    "GET",
  );
  return answer.requests;
}

/** Makes the number's next sends fail as WhatsApp would. */
export async function scriptWhatsAppErrors(phoneNumberId: string, errors: unknown[]) {
  await standIn(`${stack.whatsapp.base_url}/_standin/script`, {
    phone_number_id: phoneNumberId,
    errors,
  });
}

/** Delivers a customer's message to a WhatsApp receiver, signed as Meta signs. */
export function whatsappInbound(
  number: WhatsAppNumber,
  receiverUrl: string,
  message: { from: string; text: string; name?: string; message_id?: string; signature?: string },
) {
  return standIn(`${stack.whatsapp.base_url}/_standin/inbound`, {
    receiver_url: receiverUrl,
    app_secret: number.app_secret,
    phone_number_id: number.phone_number_id,
    ...message,
  });
}

/** A status callback for an outbound message. */
export function whatsappStatus(
  number: WhatsAppNumber,
  receiverUrl: string,
  update: { message_id: string; status: string; error?: unknown },
) {
  return standIn(`${stack.whatsapp.base_url}/_standin/status`, {
    receiver_url: receiverUrl,
    app_secret: number.app_secret,
    phone_number_id: number.phone_number_id,
    ...update,
  });
}

export interface Bot {
  id: number;
  token: string;
  username: string;
}

/** A bot of its own at the Telegram stand-in. */
export async function newBot(): Promise<Bot> {
  const { bot } = await standIn(`${stack.telegram.base_url}/_standin/bots`, {
    username: `test_${random()}_bot`,
  });
  return bot;
}

export async function telegramRequests(botId: number): Promise<{ method: string }[]> {
  const answer = await standIn(
    `${stack.telegram.base_url}/_standin/requests?bot_id=${botId}`,
    undefined,
    "GET",
  );
  return answer.requests;
}

/** An email account at the mail catcher, with a from address of its own. */
export const emailCredentials = (from = `shop-${random()}@test.example`) => ({
  host: stack.mail.smtp_host,
  port: stack.mail.smtp_port,
  secure: false,
  username: stack.mail.username,
  password: stack.mail.password,
  from: `Test Shop <${from}>`,
});

/** Connects a provider for the key's organization and environment; the integration. */
export async function connect(
  key: string,
  provider: string,
  credentials: unknown,
  name?: string,
) {
  const response = await api("integrations/connect", {
    action: "connect",
    data: { provider, credentials, ...(name ? { name } : {}) },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data;
}
