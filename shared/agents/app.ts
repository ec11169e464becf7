import { createGroupApp, defineAction, FailedAfterRecord } from "../platform/app.ts";
import {
  archiveAgent,
  createAgent,
  getAgent,
  getExecution,
  listAgents,
  listExecutions,
  updateAgent,
} from "./agents.ts";
import { finishInvocation, runInvocation, startInvocation } from "./invoke.ts";
import {
  agent,
  agentList,
  byAgentId,
  byExecutionId,
  createAgentInput,
  execution,
  executionList,
  invocation,
  invocationEvents,
  invokeInput,
  listAgentsInput,
  listExecutionsInput,
  updateAgentInput,
} from "./schemas.ts";

/** POST /v1/agents[/<action>]: AI agents (Gemini with a structured output) and their runs. */
export const actions = [
  defineAction({
    name: "list",
    summary: "List agents (default: the active ones), with latency and today's invocations",
    scope: "read",
    mutates: false,
    input: listAgentsInput,
    output: agentList,
    handler: ({ tx, data }) => listAgents(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get an agent with its instructions and schemas",
    scope: "read",
    mutates: false,
    input: byAgentId,
    output: agent,
    handler: ({ tx, data }) => getAgent(tx, data.agent_id),
  }),
  defineAction({
    name: "create",
    summary: "Create an agent (its output schema must be one Gemini accepts)",
    scope: "admin",
    mutates: true,
    input: createAgentInput,
    output: agent,
    handler: ({ tx, data }) => createAgent(tx, data),
  }),
  defineAction({
    name: "update",
    summary: "Update an agent (only the fields sent)",
    scope: "admin",
    mutates: true,
    input: updateAgentInput,
    output: agent,
    handler: ({ tx, data }) => updateAgent(tx, data),
  }),
  defineAction({
    name: "archive",
    summary: "Archive an agent (it can no longer be invoked; its executions stay)",
    scope: "admin",
    mutates: true,
    input: byAgentId,
    output: agent,
    handler: ({ tx, data }) => archiveAgent(tx, data.agent_id),
  }),
  defineAction({
    name: "invoke",
    summary: "Invoke an agent: its output is valid for its output schema. " +
      "`stream: true` answers text/event-stream (execution, partial…, then result or error)",
    scope: "write",
    mutates: true,
    input: invokeInput,
    output: invocation,
    events: invocationEvents,
    // Execution `running` and its debit, in one transaction (402 before Gemini).
    handler: ({ tx, data }) => startInvocation(tx, data),
    // Gemini, no transaction held; a stream sends the execution id, then the output's text.
    call: (started, { data, principal, signal, emit }) => {
      if (data.stream) {
        emit("execution", {
          execution_id: started.executionId,
          agent_id: started.agent.id,
          agent_name: started.agent.name,
        });
      }
      return runInvocation(started, {
        environment: principal.environment,
        signal,
        onPartial: data.stream ? (text) => emit("partial", { text }) : undefined,
      });
    },
    record: async (outcome, { tx, prepared }) => {
      const finished = await finishInvocation(tx, prepared, outcome);
      return finished.ok ? finished.invocation : new FailedAfterRecord(finished.error);
    },
  }),
  defineAction({
    name: "list_executions",
    summary: "List executions, newest first",
    paths: ["list_executions", "executions"],
    scope: "read",
    mutates: false,
    input: listExecutionsInput,
    output: executionList,
    handler: ({ tx, data }) => listExecutions(tx, data),
  }),
  defineAction({
    name: "get_execution",
    summary: "Get an execution: input, output, tokens, credits, latency, error",
    scope: "read",
    mutates: false,
    input: byExecutionId,
    output: execution,
    handler: ({ tx, data }) => getExecution(tx, data.execution_id),
  }),
];

export default createGroupApp("agents", actions);
