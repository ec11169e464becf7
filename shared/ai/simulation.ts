/**
 * A simulated model answer: what the sandbox face of Gemini returns to `bv_test_` callers
 * and what the local Gemini stand-in (local/stand-ins/gemini.ts) sends over the wire, from the
 * same code so both answer alike. Deterministic: the same request gets the same answer.
 */
import { type JsonSchema, sampleForSchema } from "./json-schema.ts";
import type { TokenUsage } from "./gemini.ts";

/** Tokens Gemini bills per inline image or PDF page; one file counts as one here. */
export const TOKENS_PER_INLINE_FILE = 258;

/** About four characters a token, as Gemini's English text averages. */
export const estimateTokens = (text: string) => Math.ceil(text.length / 4);

export interface SimulationRequest {
  /** System instructions and every text part of the request. */
  promptText: string;
  /** The user's input alone: the words the answer's strings are drawn from. */
  inputText: string;
  inlineFiles: number;
  /** The response schema asked for; without one the answer is plain text. */
  schema?: JsonSchema;
}

export interface SimulatedAnswer {
  text: string;
  usage: TokenUsage;
}

export function simulateAnswer(request: SimulationRequest): SimulatedAnswer {
  const text = request.schema
    ? JSON.stringify(sampleForSchema(request.schema, request.inputText))
    : `Simulated answer: ${request.inputText.slice(0, 200)}`;
  const promptTokens = estimateTokens(request.promptText) +
    request.inlineFiles * TOKENS_PER_INLINE_FILE;
  const candidatesTokens = estimateTokens(text);
  return {
    text,
    usage: {
      promptTokens,
      candidatesTokens,
      thoughtsTokens: 0,
      totalTokens: promptTokens + candidatesTokens,
    },
  };
}
