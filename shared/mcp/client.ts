/**
 * MCP servers as a provider (shared/platform/providers.ts): the official MCP TypeScript SDK
 * client (`@modelcontextprotocol/client`, v2) over Streamable HTTP, every request through
 * the private-network guard (guardedFetch: the server URL is the organization's, like a
 * webhook's; the local stack allows loopback).
 *
 * - live: lists the server's tools and calls them;
 * - sandbox: the same server, but only tools annotated read-only (`readOnlyHint`) are
 *   called; any other is simulated (an answer valid for its output schema when it declares
 *   one), marked `simulated`, and never reaches the server.
 *
 * Failures are {@link McpError}s (502 INTEGRATION_ERROR with the provider's message): the
 * server unreachable or refused by the guard, its HTTP errors, protocol errors and tool
 * errors (`isError`). Credentials go in headers only and never into a message.
 */
import {
  Client,
  type ContentBlock,
  ProtocolError,
  SdkError,
  SdkHttpError,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from "@modelcontextprotocol/client";
import { type JsonSchema, sampleForSchema } from "../ai/json-schema.ts";
import { ApiError } from "../platform/errors.ts";
import { jsonSize, MiB } from "../platform/json-size.ts";
import { OutboundBlockedError, OutboundNetworkError } from "../platform/outbound/address-guard.ts";
import { type Fetch, guardedFetch } from "../platform/outbound/fetch.ts";
import { defineProvider } from "../platform/providers.ts";
import { findUnstorable } from "../platform/storable-json.ts";
import type { ProviderCredentials } from "./schemas.ts";

/** Each MCP request (connect, list, call) must answer within this. */
export const MCP_REQUEST_TIMEOUT_MS = 30_000;
/** A tool's result is answered (and may be stored for replay): at most this much JSON. */
export const MAX_RESULT_BYTES = 1 * MiB;
/** Bytes read of any one HTTP response from a server (its JSON-RPC envelope included). */
export const MAX_RESPONSE_BYTES = 4 * MiB;

/** Where and how to reach one connected server. */
export interface McpConnection {
  name: string;
  url: string;
  credentials: ProviderCredentials;
}

export interface McpTool {
  name: string;
  title: string | null;
  description: string | null;
  inputSchema: JsonSchema;
  outputSchema: JsonSchema | null;
  annotations: Record<string, unknown>;
  /** `annotations.readOnlyHint === true`: the sandbox may call it. */
  readOnly: boolean;
}

export interface ToolOutcome {
  /** The tool's structured content, or `{content}` (its content blocks) when it has none. */
  result: unknown;
  /** Not called (sandbox, a tool not annotated read-only): `result` is made up. */
  simulated: boolean;
}

/** One connection to a server: list its tools, call one, close. */
export interface McpSession {
  listTools(): Promise<McpTool[]>;
  callTool(tool: McpTool, parameters: Record<string, unknown>): Promise<ToolOutcome>;
  close(): Promise<void>;
}

export interface McpServers {
  open(connection: McpConnection, signal?: AbortSignal): Promise<McpSession>;
}

export type McpErrorReason =
  | "blocked" // the URL is refused by the private-network guard
  | "unreachable" // DNS, connection, TLS, timeout
  | "unauthorized" // the server refused the credentials
  | "http" // another HTTP error from the server
  | "protocol" // a JSON-RPC or SDK error (a timeout included)
  | "tool_error" // the tool ran and reported an error (isError)
  | "invalid_result" // a result too large or that cannot be stored
  | "outcome_unknown"; // a workflow's call of a tool that is not read-only may have happened

/** A server's HTTP response was longer than {@link MAX_RESPONSE_BYTES}: cut off. */
class ResponseTooLarge extends Error {
  constructor() {
    super(`The server's response is longer than ${MAX_RESPONSE_BYTES} bytes.`);
    this.name = "ResponseTooLarge";
  }
}

/** `fetch` whose response bodies error once they pass `maxBytes` (the SDK reads them whole). */
function cappedFetch(fetch: Fetch, maxBytes: number): Fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    if (!response.body) return response;
    let read = 0;
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          read += chunk.byteLength;
          if (read > maxBytes) controller.error(new ResponseTooLarge());
          else controller.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: response.status, headers: response.headers });
  };
}

/** A failed MCP call; the message is the provider's (or says what failed) and is safe to show. */
export class McpError extends Error {
  constructor(
    readonly provider: string,
    readonly reason: McpErrorReason,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "McpError";
  }

  toApiError(): ApiError {
    return new ApiError("INTEGRATION_ERROR", this.message, {
      details: { provider: this.provider, reason: this.reason, ...this.extra },
    });
  }
}

/** Any failure of the SDK or the fetch below it, as an McpError naming the provider. */
export function mcpErrorOf(provider: string, error: unknown): McpError {
  if (error instanceof McpError) return error;
  // The SDK may wrap the fetch's error; the guard's own error says the most.
  let cause: unknown = error;
  for (let depth = 0; cause instanceof Error && depth < 4; depth++) {
    if (cause instanceof OutboundBlockedError) {
      return new McpError(
        provider,
        "blocked",
        `MCP server '${provider}' cannot be reached: ${cause.message}`,
      );
    }
    if (cause instanceof OutboundNetworkError) {
      return new McpError(
        provider,
        "unreachable",
        `MCP server '${provider}' is unreachable: ${cause.message}`,
        { network: cause.kind },
      );
    }
    if (cause instanceof ResponseTooLarge) {
      return new McpError(provider, "invalid_result", `MCP server '${provider}': ${cause.message}`);
    }
    cause = cause.cause;
  }
  if (error instanceof UnauthorizedError) {
    return new McpError(
      provider,
      "unauthorized",
      `MCP server '${provider}' refused the credentials: ${error.message}`,
    );
  }
  if (error instanceof SdkHttpError) {
    const unauthorized = error.status === 401 || error.status === 403;
    return new McpError(
      provider,
      unauthorized ? "unauthorized" : "http",
      `MCP server '${provider}' answered HTTP ${error.status}: ${error.message}`,
      { status: error.status },
    );
  }
  if (error instanceof ProtocolError || error instanceof SdkError) {
    return new McpError(provider, "protocol", `MCP server '${provider}': ${error.message}`);
  }
  if (error instanceof DOMException && error.name === "AbortError") {
    return new McpError(
      provider,
      "unreachable",
      `The call to MCP server '${provider}' was cancelled.`,
    );
  }
  return new McpError(
    provider,
    "protocol",
    `MCP server '${provider}' failed: ${error instanceof Error ? error.message : String(error)}`,
  );
}

const textOf = (content: ContentBlock[]) =>
  content.flatMap((block) => block.type === "text" ? [block.text] : []).join("\n").trim();

/** A tool's answer as `execute` gives it: structured content first. */
function resultOf(answer: { structuredContent?: unknown; content?: ContentBlock[] }): unknown {
  return answer.structuredContent !== undefined
    ? answer.structuredContent
    : { content: answer.content ?? [] };
}

function checkResult(provider: string, result: unknown) {
  const size = jsonSize(result, MAX_RESULT_BYTES + 1);
  if (size > MAX_RESULT_BYTES) {
    throw new McpError(
      provider,
      "invalid_result",
      `MCP server '${provider}' answered more than ${MAX_RESULT_BYTES} bytes of JSON.`,
    );
  }
  const unstorable = findUnstorable(result);
  if (unstorable) {
    throw new McpError(
      provider,
      "invalid_result",
      `MCP server '${provider}' answered a value that cannot be stored (${
        unstorable.problem.replace("_", " ")
      } at /${unstorable.path.join("/")}).`,
    );
  }
}

function toolOf(tool: {
  name: string;
  title?: string;
  description?: string;
  inputSchema: unknown;
  outputSchema?: unknown;
  annotations?: Record<string, unknown>;
}): McpTool {
  const annotations = tool.annotations ?? {};
  return {
    name: tool.name,
    title: tool.title ?? (typeof annotations.title === "string" ? annotations.title : null),
    description: tool.description ?? null,
    inputSchema: tool.inputSchema as JsonSchema,
    outputSchema: (tool.outputSchema as JsonSchema | undefined) ?? null,
    annotations,
    readOnly: annotations.readOnlyHint === true,
  };
}

/** Connects the SDK client to a server (the handshake) through the guard. */
async function connect(connection: McpConnection, signal?: AbortSignal): Promise<McpSession> {
  const { name, credentials } = connection;
  const client = new Client(
    { name: "bivelio", version: "1.0.0" },
    // Negotiates the 2026 per-request protocol when the server has it, else the 2025 one.
    { versionNegotiation: { mode: "auto" } },
  );
  const token = credentials.bearer_token;
  const transport = new StreamableHTTPClientTransport(new URL(connection.url), {
    fetch: cappedFetch(guardedFetch({ timeoutMs: MCP_REQUEST_TIMEOUT_MS }), MAX_RESPONSE_BYTES),
    requestInit: { headers: credentials.headers ?? {} },
    ...(token ? { authProvider: { token: () => Promise.resolve(token) } } : {}),
  });
  const options = { signal, timeout: MCP_REQUEST_TIMEOUT_MS };
  try {
    await client.connect(transport, options);
  } catch (error) {
    await client.close().catch(() => {});
    throw mcpErrorOf(name, error);
  }
  return {
    async listTools() {
      try {
        const { tools } = await client.listTools(undefined, options);
        return tools.map(toolOf);
      } catch (error) {
        throw mcpErrorOf(name, error);
      }
    },
    async callTool(tool, parameters) {
      let answer;
      try {
        answer = await client.callTool({ name: tool.name, arguments: parameters }, options);
      } catch (error) {
        throw mcpErrorOf(name, error);
      }
      const content = (answer.content ?? []) as ContentBlock[];
      if (answer.isError) {
        const message = textOf(content) || "The tool reported an error without a message.";
        throw new McpError(
          name,
          "tool_error",
          `Tool '${tool.name}' of MCP server '${name}' failed: ${message}`,
          { tool: tool.name },
        );
      }
      const result = resultOf({ structuredContent: answer.structuredContent, content });
      checkResult(name, result);
      return { result, simulated: false };
    },
    close: () => client.close().catch(() => {}),
  };
}

/** What the sandbox answers for a tool it does not call: the same shape, marked simulated. */
export function simulatedResult(tool: McpTool, parameters: Record<string, unknown>): unknown {
  if (tool.outputSchema) return sampleForSchema(tool.outputSchema, JSON.stringify(parameters));
  return {
    content: [{
      type: "text",
      text: `Sandbox: '${tool.name}' is not annotated read-only, so it was simulated, not called.`,
    }],
  };
}

const live: McpServers = { open: connect };

const sandbox: McpServers = {
  async open(connection, signal) {
    const session = await connect(connection, signal);
    return {
      ...session,
      callTool: (tool, parameters) =>
        tool.readOnly
          ? session.callTool(tool, parameters)
          : Promise.resolve({ result: simulatedResult(tool, parameters), simulated: true }),
    };
  },
};

export const mcpServers = defineProvider<McpServers>({
  name: "mcp",
  description: "MCP servers over Streamable HTTP (official SDK client, through the guard); " +
    "local stand-in: local/stand-ins/mcp-google-sheets.ts",
  live: () => live,
  sandbox: () => sandbox,
});
