/**
 * Every step type a workflow can use, gathered from the domains' step modules: adding a
 * group's steps is one line here.
 */
import { AGENT_STEP_TYPES } from "../agents/steps.ts";
import { CALENDAR_STEP_TYPES } from "../calendar/steps.ts";
import { CONTACT_STEP_TYPES } from "../contacts/steps.ts";
import { DOCUMENT_STEP_TYPES } from "../documents/steps.ts";
import { INVOICE_STEP_TYPES } from "../invoices/steps.ts";
import { MCP_STEP_TYPES } from "../mcp/steps.ts";
import { MESSAGE_STEP_TYPES } from "../messages/steps.ts";
import type { StepType } from "./steps.ts";
import { WORKFLOW_STEP_TYPES } from "./steps.ts";

export const STEP_TYPES: Record<string, StepType> = {
  ...WORKFLOW_STEP_TYPES,
  ...CONTACT_STEP_TYPES,
  ...DOCUMENT_STEP_TYPES,
  ...AGENT_STEP_TYPES,
  ...CALENDAR_STEP_TYPES,
  ...INVOICE_STEP_TYPES,
  ...MCP_STEP_TYPES,
  ...MESSAGE_STEP_TYPES,
};

export const STEP_TYPE_NAMES = Object.keys(STEP_TYPES) as [string, ...string[]];
