/**
 * A demo MCP server, `google_sheets` (local only, never deployed), built with the official
 * MCP server SDK (`@modelcontextprotocol/server`, v2) and served over Streamable HTTP at
 * `/mcp`, so the `mcp` group's real SDK client is exercised as it is in production:
 *
 * - `read_range` (`spreadsheet_id`, `range`), annotated read-only: a sheet's cells in the
 *   spec's result shape (`values`, `rows_count`, `columns_count`) as structured content; the
 *   spec's example spreadsheet answers the spec's example values, any other id a small sheet
 *   of its own, and a range like `A1:B2` cuts the values to it;
 * - `append_row` (`spreadsheet_id`, `values`), not read-only: appends a row (kept in memory);
 * - `failing_tool` (`reason`): always answers a tool error (`isError: true`) with its reason.
 *
 * Every request needs `Authorization: Bearer <MCP_BEARER_TOKEN>` when that is set (a 401
 * otherwise), as a hosted MCP server would. `GET /_standin/health` answers for the stack;
 * `GET /_standin/calls` lists the tool calls received (tests check what reached the server).
 *
 * Run by local/stack.ts (env: PORT, MCP_BEARER_TOKEN); tests start one in-process with
 * {@link createGoogleSheetsServer}.
 */
import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";

/** The spreadsheet and values of the spec's `mcp/execute` example. */
export const SPEC_SPREADSHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgVE2upms";
const SPEC_VALUES = [
  ["Name", "Email", "Plan", "Status"],
  ["Company ABC", "abc@example.com", "pro", "active"],
  ["Company XYZ", "xyz@example.com", "starter", "trial"],
];

export interface RecordedCall {
  tool: string;
  arguments: Record<string, unknown>;
}

export interface GoogleSheetsServerOptions {
  /** The bearer token every request must carry; none: no authentication. */
  bearerToken?: string;
  /** Milliseconds every tool call waits before answering (benchmarks, slow servers). */
  delayMs?: number;
  /** Awaited before a tool call answers (its number from 1): tests hold a call in flight. */
  beforeAnswer?: (callNumber: number) => Promise<void> | void;
}

/** "A1:D50" (optionally after "Sheet1!") → the 0-based last row and column it covers. */
function rangeBounds(range: string): { rows: number; columns: number } | null {
  const cells = range.includes("!") ? range.slice(range.indexOf("!") + 1) : range;
  const match = /^([A-Z]+)(\d+):([A-Z]+)(\d+)$/i.exec(cells);
  if (!match) return null;
  const column = (letters: string) =>
    [...letters.toUpperCase()].reduce((n, c) => n * 26 + c.charCodeAt(0) - 64, 0);
  return {
    rows: Number(match[4]) - Number(match[2]) + 1,
    columns: column(match[3]) - column(match[1]) + 1,
  };
}

/** The demo server's handler (a web-standard fetch) and the calls it received. */
export function createGoogleSheetsServer(options: GoogleSheetsServerOptions = {}) {
  const calls: RecordedCall[] = [];
  // A copy per server: appended rows stay with the server that got them.
  const sheets = new Map<string, string[][]>([[SPEC_SPREADSHEET_ID, structuredClone(SPEC_VALUES)]]);
  const sheetOf = (id: string) => {
    if (!sheets.has(id)) sheets.set(id, [["Name", "Value"], [`Row of ${id}`, "1"]]);
    return sheets.get(id)!;
  };
  const pause = async () => {
    const callNumber = calls.length;
    if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
    await options.beforeAnswer?.(callNumber);
  };

  // One server instance per request (createMcpHandler's stateless serving), same tools.
  const factory = () => {
    const server = new McpServer({ name: "google_sheets", version: "1.0.0" });
    server.registerTool("read_range", {
      title: "Read a range",
      description: "Reads the cells of a range (A1 notation) of a spreadsheet.",
      inputSchema: z.object({
        spreadsheet_id: z.string().min(1).describe("The spreadsheet's id"),
        range: z.string().min(1).describe("A1 notation, e.g. Sheet1!A1:D50"),
      }),
      outputSchema: z.object({
        values: z.array(z.array(z.string())),
        rows_count: z.int(),
        columns_count: z.int(),
      }),
      annotations: { readOnlyHint: true },
    }, async (args) => {
      calls.push({ tool: "read_range", arguments: args });
      await pause();
      const bounds = rangeBounds(args.range);
      const values = sheetOf(args.spreadsheet_id)
        .slice(0, bounds?.rows)
        .map((row) => row.slice(0, bounds?.columns));
      const result = {
        values,
        rows_count: values.length,
        columns_count: Math.max(0, ...values.map((row) => row.length)),
      };
      return {
        content: [{ type: "text", text: JSON.stringify(result) }],
        structuredContent: result,
      };
    });
    server.registerTool("append_row", {
      title: "Append a row",
      description: "Appends a row of values to a spreadsheet.",
      inputSchema: z.object({
        spreadsheet_id: z.string().min(1),
        values: z.array(z.string()).min(1),
      }),
      annotations: { readOnlyHint: false, destructiveHint: false },
    }, async (args) => {
      calls.push({ tool: "append_row", arguments: args });
      await pause();
      const sheet = sheetOf(args.spreadsheet_id);
      sheet.push(args.values);
      const result = { updated_rows: 1, rows_count: sheet.length };
      return {
        content: [{ type: "text", text: JSON.stringify(result) }],
        structuredContent: result,
      };
    });
    server.registerTool("failing_tool", {
      description: "Always fails with a tool error (for trying error handling).",
      inputSchema: z.object({ reason: z.string().default("The spreadsheet is locked.") }),
      annotations: { readOnlyHint: true },
    }, (args) => {
      calls.push({ tool: "failing_tool", arguments: args });
      return {
        isError: true,
        content: [{ type: "text", text: args.reason ?? "The spreadsheet is locked." }],
      };
    });
    return server;
  };
  const mcp = createMcpHandler(factory);

  const handler = async (request: Request): Promise<Response> => {
    const { pathname } = new URL(request.url);
    if (pathname === "/_standin/health") return Response.json({ ok: true });
    if (pathname === "/_standin/calls") return Response.json({ calls });
    if (pathname !== "/mcp") return new Response("Not found", { status: 404 });
    if (
      options.bearerToken &&
      request.headers.get("authorization") !== `Bearer ${options.bearerToken}`
    ) {
      return Response.json(
        { error: "invalid_token", error_description: "Missing or wrong bearer token." },
        { status: 401, headers: { "www-authenticate": 'Bearer error="invalid_token"' } },
      );
    }
    return await mcp.fetch(request);
  };
  return { handler, calls, close: () => mcp.close() };
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT") ?? 0);
  const { handler } = createGoogleSheetsServer({
    bearerToken: Deno.env.get("MCP_BEARER_TOKEN") || undefined,
  });
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, handler);
}
