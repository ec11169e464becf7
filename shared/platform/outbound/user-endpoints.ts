/**
 * The organization's own HTTP endpoints (webhook receivers, the workflow step
 * `http_request`) as a provider. Unlike a third party, the sandbox reaches them too: they are
 * the user's own test receivers, as in other vendors' test modes; what the sandbox simulates
 * are the services BiVelio calls on the user's behalf (messages, AI, calendars). Both faces go
 * through the address guard; locally `BIVELIO_ALLOW_LOOPBACK_TARGETS=1` lets them reach
 * receivers on this machine (the stand-in face of any URL).
 */
import { defineProvider } from "../providers.ts";
import type { OutboundOptions } from "./address-guard.ts";
import { outboundFetch, type OutboundRequest, type OutboundResponse } from "./fetch.ts";

export interface UserEndpointClient {
  send(request: OutboundRequest, options?: OutboundOptions): Promise<OutboundResponse>;
}

const guarded: UserEndpointClient = { send: outboundFetch };

export const userEndpoints = defineProvider<UserEndpointClient>({
  name: "user_endpoints",
  description: "the organization's own URLs (webhooks, http_request steps), through the guard",
  live: () => guarded,
  sandbox: () => guarded,
});
