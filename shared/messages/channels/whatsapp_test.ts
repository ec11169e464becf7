/**
 * The WhatsApp channel's pure parts: recipients (E.164) and the callback parser. The client
 * and the receiver kind over HTTP are tested against the stand-in in tests/whatsapp_test.ts.
 */
// The channel registry first: inbound.ts → messages.ts → channels.ts → this channel is an
// import cycle that only resolves when the registry is evaluated before the channel.
import "../channels.ts";
import assert from "node:assert/strict";
import { ApiError } from "../../platform/errors.ts";
import {
  inboundBody,
  normalizeWhatsAppRecipient,
  parseWhatsAppCallback,
  whatsapp,
} from "./whatsapp.ts";

const bytes = (value: unknown) =>
  new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

function callback(value: Record<string, unknown>, field = "messages") {
  return {
    object: "whatsapp_business_account",
    entry: [{
      id: "102290129340398",
      changes: [{
        field,
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550100001", phone_number_id: "100000000000001" },
          ...value,
        },
      }],
    }],
  };
}

Deno.test("whatsapp recipients: E.164 with separators becomes digits", () => {
  assert.equal(normalizeWhatsAppRecipient("+34 612 345 678"), "34612345678");
  assert.equal(normalizeWhatsAppRecipient("+1 (555) 010-0001"), "15550100001");
  assert.equal(normalizeWhatsAppRecipient("+44.20.7946.0958"), "442079460958");
  assert.equal(normalizeWhatsAppRecipient("+12345678"), "12345678"); // 8 digits
  assert.equal(normalizeWhatsAppRecipient("+123456789012345"), "123456789012345"); // 15
  assert.equal(whatsapp.normalizeRecipient("+34612345678"), "34612345678");
});

Deno.test("whatsapp recipients: anything else is a VALIDATION_ERROR naming to", () => {
  for (
    const to of [
      "34612345678", // no +
      "+1234567", // 7 digits
      "+1234567890123456", // 16 digits
      "+034612345678", // country code starting with 0
      "+34 612 345 67a",
      "+34/612345678",
      "",
      "+",
      "ct_abc123",
      "+34 612 345 678\n",
    ]
  ) {
    assert.throws(
      () => normalizeWhatsAppRecipient(to),
      (error: unknown) =>
        error instanceof ApiError && error.code === "VALIDATION_ERROR" &&
        error.options.details?.field === "to" && /'to'/.test(error.message),
      JSON.stringify(to),
    );
  }
});

Deno.test("whatsapp credentials: strict, with the API version defaulted", () => {
  const good = {
    phone_number_id: "100000000000001",
    access_token: "token",
    app_secret: "secret",
    verify_token: "verify",
  };
  assert.equal(whatsapp.credentials.parse(good).api_version, "v21.0");
  assert.equal(whatsapp.credentials.safeParse({ ...good, extra: 1 }).success, false);
  // Both go into the URL path: nothing but digits, and a version.
  assert.equal(
    whatsapp.credentials.safeParse({ ...good, phone_number_id: "1/../x" }).success,
    false,
  );
  assert.equal(whatsapp.credentials.safeParse({ ...good, api_version: "v21.0/x" }).success, false);
  const { access_token: _, ...withoutToken } = good;
  assert.equal(whatsapp.credentials.safeParse(withoutToken).success, false);
  assert.deepEqual(whatsapp.publicPart(whatsapp.credentials.parse(good)), {
    phone_number_id: "100000000000001",
    display_phone_number: null,
  });
  assert.deepEqual(whatsapp.receiverSecrets!(whatsapp.credentials.parse(good)), {
    app_secret: "secret",
    verify_token: "verify",
  });
});

Deno.test("whatsapp callbacks: a text message with its sender's profile name", () => {
  const items = parseWhatsAppCallback(bytes(callback({
    contacts: [{ profile: { name: "María García" }, wa_id: "34612345678" }],
    messages: [{
      from: "34612345678",
      id: "wamid.HBgLMzQ2MTIzNDU2NzgVAgASGBQzQTRB",
      timestamp: "1764628800",
      type: "text",
      text: { body: "Hola, ¿tenéis mesa?" },
    }],
  })));
  assert.deepEqual(items, [{
    providerId: "wamid.HBgLMzQ2MTIzNDU2NzgVAgASGBQzQTRB",
    payload: {
      type: "message",
      message: {
        channel: "whatsapp",
        providerMessageId: "wamid.HBgLMzQ2MTIzNDU2NzgVAgASGBQzQTRB",
        from: "34612345678",
        fromName: "María García",
        to: "15550100001",
        body: "Hola, ¿tenéis mesa?",
        receivedAt: new Date(1764628800 * 1000),
      },
    },
  }]);
});

Deno.test("whatsapp callbacks: statuses, each transition its own provider id", () => {
  const items = parseWhatsAppCallback(bytes(callback({
    statuses: [
      { id: "wamid.A", status: "sent", timestamp: "1764628801", recipient_id: "34612345678" },
      { id: "wamid.A", status: "delivered", timestamp: "1764628802" },
      { id: "wamid.A", status: "read", timestamp: "1764628803" },
      {
        id: "wamid.B",
        status: "failed",
        timestamp: "1764628804",
        errors: [{
          code: 131026,
          title: "Message undeliverable",
          error_data: { details: "The recipient may not be a WhatsApp user." },
        }],
      },
      { id: "wamid.C", status: "deleted", timestamp: "1764628805" },
    ],
  })));
  assert.deepEqual(items.map((item) => item.providerId), [
    "status:wamid.A:sent",
    "status:wamid.A:delivered",
    "status:wamid.A:read",
    "status:wamid.B:failed",
  ]);
  assert.deepEqual(items[3].payload, {
    type: "status",
    update: {
      channel: "whatsapp",
      providerMessageId: "wamid.B",
      status: "failed",
      at: new Date(1764628804 * 1000),
      error: { code: 131026, message: "The recipient may not be a WhatsApp user." },
    },
  });
});

Deno.test("whatsapp callbacks: batches, other fields and other message types", () => {
  const body = callback({
    contacts: [
      { profile: { name: "Ana" }, wa_id: "34600000001" },
      { profile: { name: "Ben" }, wa_id: "34600000002" },
    ],
    messages: [
      {
        from: "34600000002",
        id: "wamid.1",
        timestamp: "1",
        type: "image",
        image: { caption: "receipt" },
      },
      { from: "34600000001", id: "wamid.2", timestamp: "2", type: "audio", audio: { id: "m" } },
    ],
  });
  body.entry.push({
    id: "x",
    changes: [{ field: "message_template_status_update", value: { event: "APPROVED" } }],
  } as never);
  const items = parseWhatsAppCallback(bytes(body));
  assert.deepEqual(
    items.map((item) => item.payload.type === "message" && item.payload.message),
    [
      {
        channel: "whatsapp",
        providerMessageId: "wamid.1",
        from: "34600000002",
        fromName: "Ben",
        to: "15550100001",
        body: "[image] receipt",
        receivedAt: new Date(1000),
      },
      {
        channel: "whatsapp",
        providerMessageId: "wamid.2",
        from: "34600000001",
        fromName: "Ana",
        to: "15550100001",
        body: "[audio]",
        receivedAt: new Date(2000),
      },
    ],
  );

  assert.equal(
    inboundBody({ type: "interactive", interactive: { button_reply: { title: "Yes" } } }),
    "Yes",
  );
  assert.equal(
    inboundBody({ type: "button", button: { text: "Stop promotions" } }),
    "Stop promotions",
  );
  assert.equal(inboundBody({ type: "reaction", reaction: { emoji: "👍" } }), "[reaction] 👍");
  assert.equal(inboundBody({ type: "sticker", sticker: {} }), "[sticker]");
  assert.equal(inboundBody({ type: "unsupported" }), "[unsupported]");
  assert.equal(
    inboundBody({ type: "location", location: { latitude: 40.4, longitude: -3.7, name: "Sol" } }),
    "[location] Sol (40.4,-3.7)",
  );
});

Deno.test("whatsapp callbacks: a body that is not Meta's shape is a 400", () => {
  for (
    const body of [
      "not json",
      "[]",
      { object: "whatsapp_business_account" },
      { object: "whatsapp_business_account", entry: "x" },
      callback({ messages: [{ from: "1", type: "text", text: { body: "no id" } }] }),
      callback({ messages: [{ id: "wamid.x", type: "text" }] }), // no from
      callback({ statuses: [{ id: "wamid.x" }] }), // no status
    ]
  ) {
    assert.throws(
      () => parseWhatsAppCallback(bytes(body)),
      (error: unknown) => error instanceof ApiError && error.status === 400,
      JSON.stringify(body),
    );
  }
  // A change without messages (a template review) is simply no update.
  assert.deepEqual(parseWhatsAppCallback(bytes(callback({}, "account_update"))), []);
});
