/**
 * Reading recorded executions (public.mcp_executions) and a provider's tools: the
 * `get_execution`, `list_executions` and `list_tools` actions.
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { notFound } from "../platform/errors.ts";
import { pageWindow, paginationOf } from "../platform/pagination.ts";
import { clientFor } from "../platform/providers.ts";
import { isoTimestamp } from "../platform/time.ts";
import { mcpErrorOf, mcpServers } from "./client.ts";
import { connectionOf, type ProviderRow } from "./providers.ts";
import type { executionRecord, ListExecutions, toolList } from "./schemas.ts";

interface ExecutionRow {
  id: string;
  provider: string;
  tool: string;
  parameters: Record<string, unknown>;
  status: "running" | "completed" | "failed";
  simulated: boolean;
  result_bytes: number | null;
  duration_ms: number | null;
  error: { code: string; message: string; details?: Record<string, unknown> } | null;
  created_at: Date;
  completed_at: Date | null;
}

const recordOf = (row: ExecutionRow): z.input<typeof executionRecord> => ({
  execution_id: row.id,
  provider: row.provider,
  tool: row.tool,
  parameters: row.parameters,
  status: row.status,
  simulated: row.simulated,
  result_bytes: row.result_bytes,
  duration_ms: row.duration_ms,
  error: row.error,
  created_at: isoTimestamp(row.created_at),
  completed_at: isoTimestamp(row.completed_at),
});

export async function getExecution(tx: Tx, executionId: string) {
  const [row] = await tx<ExecutionRow[]>`
    select id, provider, tool, parameters, status, simulated, result_bytes, duration_ms,
           error, created_at, completed_at
    from public.mcp_executions where id = ${executionId}
  `;
  if (!row) throw notFound("MCP execution", executionId);
  return recordOf(row);
}

export async function listExecutions(tx: Tx, query: ListExecutions) {
  const where = tx`
    where true
    ${query.provider ? tx`and provider = ${query.provider}` : tx``}
    ${query.status ? tx`and status = ${query.status}` : tx``}
  `;
  const [{ total }] = await tx<{ total: number }[]>`
    select count(*)::int as total from public.mcp_executions ${where}
  `;
  const rows = await tx<ExecutionRow[]>`
    select id, provider, tool, parameters, status, simulated, result_bytes, duration_ms,
           error, created_at, completed_at
    from public.mcp_executions ${where}
    order by created_at desc, id desc ${pageWindow(tx, query)}
  `;
  return { executions: rows.map(recordOf), pagination: paginationOf(query, total) };
}

/** A provider's tools with their input schemas, straight from its server. */
export async function listTools(
  provider: Pick<ProviderRow, "name" | "url" | "sealed_credentials">,
  options: { environment: Environment; signal?: AbortSignal },
): Promise<z.input<typeof toolList>> {
  try {
    const session = await clientFor(mcpServers, options.environment)
      .open(await connectionOf(provider), options.signal);
    try {
      const tools = await session.listTools();
      return {
        provider: provider.name,
        tools: tools.map((tool) => ({
          name: tool.name,
          title: tool.title,
          description: tool.description,
          input_schema: tool.inputSchema,
          read_only: tool.readOnly,
          annotations: tool.annotations,
        })),
      };
    } finally {
      await session.close();
    }
  } catch (error) {
    throw mcpErrorOf(provider.name, error).toApiError();
  }
}
