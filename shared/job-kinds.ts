/**
 * Every job kind the worker runs, each declared by its domain with `defineJobKind`
 * (handler, retry policy, share of a worker's slots): adding a kind is one line here.
 */
import { AGENT_INVOCATION_JOB } from "./agents/steps.ts";
import {
  CALENDAR_EVENT_CREATION_JOB,
  CALENDAR_REMINDER_JOB,
  CALENDAR_SYNC_JOB,
} from "./calendar/jobs.ts";
import { DOCUMENT_EXTRACTION_JOB } from "./documents/steps.ts";
import { MCP_TOOL_JOB } from "./mcp/steps.ts";
import { MESSAGE_SEND_JOB } from "./messages/steps.ts";
import type { JobKind } from "./platform/worker.ts";
import { WEBHOOK_JOB } from "./webhooks/jobs.ts";
import { WORKFLOW_JOB } from "./workflows/jobs.ts";

export const JOB_KINDS: readonly JobKind[] = [
  WORKFLOW_JOB,
  WEBHOOK_JOB,
  AGENT_INVOCATION_JOB,
  DOCUMENT_EXTRACTION_JOB,
  CALENDAR_REMINDER_JOB,
  CALENDAR_SYNC_JOB,
  CALENDAR_EVENT_CREATION_JOB,
  MCP_TOOL_JOB,
  MESSAGE_SEND_JOB,
];
