import { createGroupApp, defineAction, FailedAfterRecord } from "../platform/app.ts";
import { callSend, getMessage, listMessages, prepareSend, recordSend } from "./messages.ts";
import {
  byMessageId,
  listMessagesInput,
  message,
  messageList,
  sendInput,
  sentMessage,
} from "./schemas.ts";

/** POST /v1/messages[/<action>]: WhatsApp, Telegram and email, sent and received. */
export const actions = [
  defineAction({
    name: "send",
    summary: "Send a message through a connected channel (sandbox: simulated, never sent)",
    scope: "write",
    mutates: true,
    input: sendInput,
    output: sentMessage,
    // The integration, the recipient, the contact; the message stored queued.
    handler: ({ tx, data, principal }) =>
      prepareSend(tx, data, { environment: principal.environment }),
    // The provider, no transaction held.
    call: (prepared, { signal }) => callSend(prepared, { signal }),
    // Sent with message.sent, or failed with the provider's code (502, nothing retried).
    record: async (outcome, { tx, prepared }) => {
      const recorded = await recordSend(tx, prepared, outcome);
      return recorded.ok ? recorded.answer : new FailedAfterRecord(recorded.error);
    },
  }),
  defineAction({
    name: "list",
    summary: "A conversation: messages in and out (by contact, channel), newest first",
    scope: "read",
    mutates: false,
    input: listMessagesInput,
    output: messageList,
    handler: ({ tx, data }) => listMessages(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get a message and its status",
    scope: "read",
    mutates: false,
    input: byMessageId,
    output: message,
    handler: ({ tx, data }) => getMessage(tx, data.message_id),
  }),
];

export default createGroupApp("messages", actions);
