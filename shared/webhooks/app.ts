import { createGroupApp, defineAction } from "../platform/app.ts";
import {
  byDeliveryId,
  listDeliveries,
  listDeliveriesInput,
  queueTestDelivery,
  redeliver,
  testWebhookInput,
  waitForFirstAttempt,
} from "./deliveries.ts";
import {
  byWebhookId,
  createWebhook,
  createWebhookInput,
  deleteWebhook,
  getWebhook,
  listWebhooks,
  listWebhooksInput,
  rotateSecretInput,
  rotateWebhookSecret,
  updateWebhook,
  updateWebhookInput,
} from "./endpoints.ts";
import {
  createdWebhook,
  deletedWebhook,
  rotatedWebhookSecret,
  webhook,
  webhookDelivery,
  webhookDeliveryList,
  webhookList,
} from "./schemas.ts";

/** POST /v1/webhooks[/<action>]: outbound webhooks and their deliveries (admin scope). */
export const actions = [
  defineAction({
    name: "create",
    summary: "Register a webhook (the signing secret is shown once)",
    scope: "admin",
    mutates: true,
    // The response holds the signing secret: it must not be stored for replay.
    replayable: false,
    input: createWebhookInput,
    output: createdWebhook,
    handler: ({ tx, data, principal }) => createWebhook(tx, principal, data),
  }),
  defineAction({
    name: "list",
    summary: "List webhooks, with last_triggered_at and success_rate",
    scope: "admin",
    mutates: false,
    input: listWebhooksInput,
    output: webhookList,
    handler: ({ tx, data }) => listWebhooks(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get a webhook",
    scope: "admin",
    mutates: false,
    input: byWebhookId,
    output: webhook,
    handler: ({ tx, data }) => getWebhook(tx, data.webhook_id),
  }),
  defineAction({
    name: "update",
    summary: "Update a webhook; status 'active' reactivates it and sends what it held",
    scope: "admin",
    mutates: true,
    input: updateWebhookInput,
    output: webhook,
    handler: ({ tx, data, principal }) => updateWebhook(tx, principal, data),
  }),
  defineAction({
    name: "delete",
    summary: "Delete a webhook and its deliveries",
    scope: "admin",
    mutates: true,
    input: byWebhookId,
    output: deletedWebhook,
    handler: ({ tx, data }) => deleteWebhook(tx, data.webhook_id),
  }),
  defineAction({
    name: "rotate_secret",
    summary: "Rotate the signing secret (shown once); the old one signs 24 h more",
    scope: "admin",
    mutates: true,
    replayable: false,
    input: rotateSecretInput,
    output: rotatedWebhookSecret,
    handler: ({ tx, data }) => rotateWebhookSecret(tx, data),
  }),
  defineAction({
    name: "list_deliveries",
    summary: "List deliveries with every attempt",
    scope: "admin",
    mutates: false,
    input: listDeliveriesInput,
    output: webhookDeliveryList,
    handler: ({ tx, data }) => listDeliveries(tx, data),
  }),
  defineAction({
    name: "redeliver",
    summary: "Attempt a delivery again now",
    scope: "admin",
    mutates: true,
    input: byDeliveryId,
    output: webhookDelivery,
    handler: ({ tx, data }) => redeliver(tx, data.delivery_id),
  }),
  defineAction({
    name: "test",
    summary: "Send a signed webhook.test event and return its attempt",
    scope: "admin",
    mutates: true,
    input: testWebhookInput,
    output: webhookDelivery,
    handler: ({ tx, data }) => queueTestDelivery(tx, data.webhook_id),
    // The worker sends it once the delivery is committed; wait for that attempt.
    call: (queued, { principal }) => waitForFirstAttempt(principal, queued.delivery_id),
  }),
];

export default createGroupApp("webhooks", actions);
