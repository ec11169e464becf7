/**
 * Agents and their executions: queries and changes, in the caller's RLS transaction (so the
 * organization and environment are decided by Postgres). Invoking is in invoke.ts.
 */
import type { Tx } from "../platform/db.ts";
import { ApiError, notFound } from "../platform/errors.ts";
import { pageWindow, paginationOf } from "../platform/pagination.ts";
import { isoTimestamp } from "../platform/time.ts";
import { checkInputSchema, checkOutputSchema } from "./json-schemas.ts";
import type { CreateAgent, ListAgents, ListExecutions, UpdateAgent } from "./schemas.ts";

export interface AgentRow {
  id: string;
  name: string;
  description: string;
  category: string;
  model: string;
  instructions: string;
  input_schema: Record<string, unknown> | null;
  output_schema: Record<string, unknown>;
  temperature: number;
  status: "active" | "inactive" | "archived";
  created_at: Date;
  updated_at: Date;
}

interface AgentFigures {
  avg_latency_ms: number | null;
  invocations_today: number;
}

/** How many of an agent's latest completed executions its average latency covers. */
const LATENCY_SAMPLE = 100;

const agentColumns = (tx: Tx) =>
  tx`a.id, a.name, a.description, a.category, a.model, a.instructions, a.input_schema,
     a.output_schema, a.temperature, a.status, a.created_at, a.updated_at`;

/** `list`'s figures, per agent row `a`, each from an index range of its executions. */
const figureColumns = (tx: Tx) =>
  tx`
    (select round(avg(recent.duration_ms))::int from (
       select e.duration_ms from public.agent_executions e
       where e.agent_id = a.id and e.status = 'completed'
       order by e.completed_at desc limit ${LATENCY_SAMPLE}) recent) as avg_latency_ms,
    (select count(*)::int from public.agent_executions e
     where e.agent_id = a.id
       and e.created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'
    ) as invocations_today`;

export function agentSummaryToApi(row: AgentRow & AgentFigures) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    category: row.category,
    status: row.status,
    model: row.model,
    avg_latency_ms: row.avg_latency_ms,
    invocations_today: row.invocations_today,
  };
}

export function agentToApi(row: AgentRow & AgentFigures) {
  return {
    ...agentSummaryToApi(row),
    instructions: row.instructions,
    input_schema: row.input_schema,
    output_schema: row.output_schema,
    temperature: row.temperature,
    created_at: isoTimestamp(row.created_at)!,
    updated_at: isoTimestamp(row.updated_at)!,
  };
}
export type Agent = ReturnType<typeof agentToApi>;

export async function listAgents(tx: Tx, query: ListAgents) {
  const filters = [tx`true`];
  if (query.status !== "all") filters.push(tx`a.status = ${query.status}`);
  if (query.category !== "all") filters.push(tx`a.category = ${query.category}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const [{ total }] = await tx<{ total: number }[]>`
    select count(*)::int as total from public.agents a where ${where}
  `;
  const rows = total === 0 ? [] : await tx<(AgentRow & AgentFigures)[]>`
    select ${agentColumns(tx)}, ${figureColumns(tx)}
    from public.agents a
    where ${where}
    order by a.created_at, a.id
    ${pageWindow(tx, query)}
  `;
  return { agents: rows.map(agentSummaryToApi), pagination: paginationOf(query, total) };
}

/** The agent's row, locked for the rest of the transaction when `lock` says so. */
export async function findAgent(tx: Tx, id: string, lock: "share" | "update" | null = null) {
  const locking = lock === "share" ? tx`for share` : lock === "update" ? tx`for update` : tx``;
  const [row] = await tx<AgentRow[]>`
    select ${agentColumns(tx)} from public.agents a where a.id = ${id} ${locking}
  `;
  if (!row) throw notFound("Agent", id);
  return row;
}

export async function getAgent(tx: Tx, id: string) {
  const [row] = await tx<(AgentRow & AgentFigures)[]>`
    select ${agentColumns(tx)}, ${figureColumns(tx)} from public.agents a where a.id = ${id}
  `;
  if (!row) throw notFound("Agent", id);
  return agentToApi(row);
}

export async function createAgent(tx: Tx, input: CreateAgent) {
  checkOutputSchema(input.output_schema);
  if (input.input_schema) checkInputSchema(input.input_schema);
  const [row] = await tx<{ id: string }[]>`
    insert into public.agents (name, description, category, model, instructions, input_schema,
                               output_schema, temperature, status)
    values (${input.name}, ${input.description}, ${input.category}, ${input.model},
            ${input.instructions}, ${
    input.input_schema ? tx.json(input.input_schema as never) : null
  },
            ${tx.json(input.output_schema as never)}, ${input.temperature}, ${input.status})
    returning id
  `;
  return await getAgent(tx, row.id);
}

/** 409 AGENT_INACTIVE-like refusal: an archived agent is kept for its executions only. */
const archived = (id: string) =>
  new ApiError("AGENT_INACTIVE", `Agent '${id}' is archived and cannot be changed.`, {
    details: { agent_id: id, status: "archived" },
  });

export async function updateAgent(tx: Tx, patch: UpdateAgent) {
  const { agent_id: id } = patch;
  if (patch.output_schema) checkOutputSchema(patch.output_schema);
  if (patch.input_schema) checkInputSchema(patch.input_schema);
  // Locked: a concurrent archive either commits first (and this sees it) or waits.
  const current = await findAgent(tx, id, "update");
  if (current.status === "archived") throw archived(id);
  const sets = [];
  if (patch.name !== undefined) sets.push(tx`name = ${patch.name}`);
  if (patch.description !== undefined) sets.push(tx`description = ${patch.description}`);
  if (patch.category !== undefined) sets.push(tx`category = ${patch.category}`);
  if (patch.model !== undefined) sets.push(tx`model = ${patch.model}`);
  if (patch.instructions !== undefined) sets.push(tx`instructions = ${patch.instructions}`);
  if (patch.input_schema !== undefined) {
    sets.push(
      tx`input_schema = ${patch.input_schema ? tx.json(patch.input_schema as never) : null}`,
    );
  }
  if (patch.output_schema !== undefined) {
    sets.push(tx`output_schema = ${tx.json(patch.output_schema as never)}`);
  }
  if (patch.temperature !== undefined) sets.push(tx`temperature = ${patch.temperature}`);
  if (patch.status !== undefined) sets.push(tx`status = ${patch.status}`);
  if (sets.length > 0) {
    await tx`
      update public.agents set ${sets.reduce((all, next) => tx`${all}, ${next}`)},
        updated_at = now()
      where id = ${id}
    `;
  }
  return await getAgent(tx, id);
}

/** Archives an agent: it can no longer be invoked or changed; its executions stay. */
export async function archiveAgent(tx: Tx, id: string) {
  const [row] = await tx`
    update public.agents set status = 'archived', updated_at = now()
    where id = ${id} and status <> 'archived' returning id
  `;
  if (!row) await findAgent(tx, id); // 404 when it does not exist; archived already: as is
  return await getAgent(tx, id);
}

// ---------------------------------------------------------------------------------------
// Executions

export interface ExecutionRow {
  id: string;
  agent_id: string;
  agent_name: string;
  model: string;
  status: "running" | "completed" | "failed";
  input: Record<string, unknown>;
  output: unknown;
  prompt_tokens: number;
  output_tokens: number;
  total_tokens: number;
  credits: number;
  duration_ms: number | null;
  error: { code: string; message: string; details?: Record<string, unknown> } | null;
  created_at: Date;
  completed_at: Date | null;
}

const executionColumns = (tx: Tx) =>
  tx`e.id, e.agent_id, a.name as agent_name, e.model, e.status, e.input, e.output,
     e.prompt_tokens, e.output_tokens, e.total_tokens, e.credits, e.duration_ms, e.error,
     e.created_at, e.completed_at`;

export function executionToApi(row: ExecutionRow) {
  return {
    id: row.id,
    agent_id: row.agent_id,
    agent_name: row.agent_name,
    model: row.model,
    status: row.status,
    input: row.input,
    output: row.output,
    tokens: { prompt: row.prompt_tokens, output: row.output_tokens, total: row.total_tokens },
    credits_consumed: row.credits,
    duration_ms: row.duration_ms,
    error: row.error,
    created_at: isoTimestamp(row.created_at)!,
    completed_at: isoTimestamp(row.completed_at),
  };
}

export async function listExecutions(tx: Tx, query: ListExecutions) {
  const filters = [tx`true`];
  if (query.agent_id) filters.push(tx`e.agent_id = ${query.agent_id}`);
  if (query.status) filters.push(tx`e.status = ${query.status}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const [{ total }] = await tx<{ total: number }[]>`
    select count(*)::int as total from public.agent_executions e where ${where}
  `;
  const rows = total === 0 ? [] : await tx<ExecutionRow[]>`
    select ${executionColumns(tx)}
    from public.agent_executions e join public.agents a on a.id = e.agent_id
    where ${where}
    order by e.created_at desc, e.id desc
    ${pageWindow(tx, query)}
  `;
  return { executions: rows.map(executionToApi), pagination: paginationOf(query, total) };
}

export async function getExecution(tx: Tx, id: string) {
  const [row] = await tx<ExecutionRow[]>`
    select ${executionColumns(tx)}
    from public.agent_executions e join public.agents a on a.id = e.agent_id
    where e.id = ${id}
  `;
  if (!row) throw notFound("Agent execution", id);
  return executionToApi(row);
}
