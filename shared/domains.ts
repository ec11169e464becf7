/**
 * The endpoint groups, in one place: each group's name (its path, `/v1/<group>`) and its
 * actions, and the routes outside the action dispatch. OpenAPI documents them from here
 * (shared/platform/functions/openapi.ts), and the tests check every answer against the
 * schemas they declare (tests/helpers/stack.ts). Adding a group is one line here.
 */
import { actions as agents } from "./agents/app.ts";
import { actions as apiKeys } from "./api-keys/app.ts";
import { actions as auth } from "./auth/app.ts";
import { passwordGrant, refreshGrant, tokenResponse } from "./auth/schemas.ts";
import { actions as calendar } from "./calendar/app.ts";
import { actions as cases } from "./cases/app.ts";
import { actions as contacts } from "./contacts/app.ts";
import { actions as documents } from "./documents/app.ts";
import { actions as forms } from "./forms/app.ts";
import { actions as invoices } from "./invoices/app.ts";
import { actions as mcp } from "./mcp/app.ts";
import { actions as integrations } from "./integrations/app.ts";
import { actions as messages } from "./messages/app.ts";
import { actions as credits } from "./credits/app.ts";
import type { Action } from "./platform/app.ts";
import { healthResponse, readyResponse } from "./platform/health.ts";
import type { DocumentedRoute } from "./platform/openapi.ts";
import { actions as webhooks } from "./webhooks/app.ts";
import { actions as workflows } from "./workflows/app.ts";

export interface Group {
  group: string;
  actions: Action[];
}

export const GROUPS: Group[] = [
  { group: "auth", actions: auth },
  { group: "api-keys", actions: apiKeys },
  { group: "contacts", actions: contacts },
  { group: "cases", actions: cases },
  { group: "workflows", actions: workflows },
  { group: "webhooks", actions: webhooks },
  { group: "forms", actions: forms },
  { group: "credits", actions: credits },
  { group: "agents", actions: agents },
  { group: "documents", actions: documents },
  { group: "calendar", actions: calendar },
  { group: "invoices", actions: invoices },
  { group: "integrations", actions: integrations },
  { group: "messages", actions: messages },
  { group: "mcp", actions: mcp },
];

/** Routes that do not take `{action, data}`, with the schemas of their 200 answers. */
export const ROUTES: DocumentedRoute[] = [
  {
    method: "post",
    path: "/auth/token",
    tags: ["auth"],
    summary: "Sign in (grant_type=password) or refresh a session (grant_type=refresh_token)",
    description: "Needs the project's `apikey` header. Answers the spec's token response, " +
      "not the envelope. Failed attempts are limited per email and per client address.",
    query: { grant_type: ["password", "refresh_token"] },
    headers: ["apikey"],
    body: [passwordGrant, refreshGrant],
    output: tokenResponse,
    enveloped: false,
    errors: [400, 401, 413, 429, 500, 502],
  },
  {
    method: "get",
    path: "/health",
    tags: ["health"],
    summary: "Liveness: the function answers (no database, no auth)",
    output: healthResponse,
    enveloped: true,
    errors: [],
  },
  {
    method: "get",
    path: "/ready",
    tags: ["health"],
    summary: "Readiness: the database, the migrations this code needs, pg_cron",
    output: readyResponse,
    enveloped: true,
    errors: [503],
  },
];
