import { z } from "zod";
import { createGroupApp, defineAction } from "../platform/app.ts";
import { withClaims } from "../platform/db.ts";
import { generateAction } from "../generation/generate.ts";
import { workflowGeneration } from "../generation/workflow.ts";
import {
  archiveWorkflow,
  createWorkflow,
  createWorkflowInput,
  getWorkflow,
  listWorkflows,
  listWorkflowsInput,
  updateWorkflow,
  updateWorkflowInput,
  workflowId,
} from "./definitions.ts";
import {
  byInstanceId,
  cancelInstance,
  executeInput,
  executeWorkflow,
  getInstance,
  isFinished,
  listInstances,
  listInstancesInput,
  SYNC_EXECUTE_TIMEOUT_MS,
  waitForInstanceEnd,
} from "./instances.ts";
import {
  workflow,
  workflowExecution,
  workflowInstance,
  workflowInstanceDetail,
  workflowInstanceList,
  workflowList,
} from "./schemas.ts";

const byWorkflowId = z.strictObject({ workflow_id: workflowId });

/** POST /v1/workflows[/<action>]: workflow definitions and their runs. */
export const actions = [
  defineAction({
    name: "list",
    summary: "List workflows",
    scope: "read",
    mutates: false,
    input: listWorkflowsInput,
    output: workflowList,
    handler: ({ tx, data }) => listWorkflows(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get a workflow with its steps",
    scope: "read",
    mutates: false,
    input: byWorkflowId,
    output: workflow,
    handler: ({ tx, data }) => getWorkflow(tx, data.workflow_id),
  }),
  defineAction({
    name: "create",
    summary: "Create a workflow",
    scope: "write",
    mutates: true,
    input: createWorkflowInput,
    output: workflow,
    handler: ({ tx, data, principal }) => createWorkflow(tx, data, principal),
  }),
  defineAction({
    name: "update",
    summary: "Update a workflow (only the fields sent; new steps make a new version)",
    scope: "write",
    mutates: true,
    input: updateWorkflowInput,
    output: workflow,
    handler: ({ tx, data, principal }) => updateWorkflow(tx, data, principal),
  }),
  defineAction({
    name: "archive",
    summary: "Archive a workflow (it can no longer be executed)",
    scope: "write",
    mutates: true,
    input: byWorkflowId,
    output: workflow,
    handler: ({ tx, data }) => archiveWorkflow(tx, data.workflow_id),
  }),
  defineAction({
    name: "execute",
    summary: "Execute a workflow (async, or wait up to 60 s for the end)",
    scope: "write",
    mutates: true,
    input: executeInput,
    output: workflowExecution,
    handler: ({ tx, data }) => executeWorkflow(tx, data),
    // Sync: wait for the end once the instance is committed (the worker cannot see it before).
    call: async (started, { data, principal }) => {
      if (data.async) return started;
      const read = () => withClaims(principal.claims, (tx) => getInstance(tx, started.instance_id));
      await waitForInstanceEnd(
        started.instance_id,
        SYNC_EXECUTE_TIMEOUT_MS,
        async () => isFinished((await read()).status),
      );
      return await read();
    },
  }),
  defineAction({
    name: "list_instances",
    summary: "List workflow instances",
    paths: ["instances", "list_instances"],
    scope: "read",
    mutates: false,
    input: listInstancesInput,
    output: workflowInstanceList,
    handler: ({ tx, data }) => listInstances(tx, data),
  }),
  defineAction({
    name: "get_instance",
    summary: "Get an instance with its per-step records",
    scope: "read",
    mutates: false,
    input: byInstanceId,
    output: workflowInstanceDetail,
    handler: ({ tx, data }) => getInstance(tx, data.instance_id),
  }),
  defineAction({
    name: "cancel_instance",
    summary: "Cancel a pending or running instance",
    scope: "write",
    mutates: true,
    input: byInstanceId,
    output: workflowInstance,
    handler: ({ tx, data }) => cancelInstance(tx, data.instance_id),
  }),
  // POST /v1/workflows/generate: a definition from a prompt, returned as a draft (5 credits).
  generateAction(workflowGeneration),
];

export default createGroupApp("workflows", actions);
