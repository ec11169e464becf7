/**
 * Templates in step configs: `{{input.client_email}}` and `{{steps.<id>.output.<path>}}`.
 * Pure data substitution: a template names a path into the instance's input or an earlier
 * step's output, never an expression. A string that is exactly one template takes the
 * value as it is (a number stays a number); templates inside longer text are written as
 * text (objects as JSON). A path that does not exist is an error naming the template.
 */

const TEMPLATE = /\{\{\s*([^{}]*?)\s*\}\}/g;
const WHOLE_TEMPLATE = /^\{\{\s*([^{}]*?)\s*\}\}$/;
const SEGMENT = /^[A-Za-z0-9_-]+$/;

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TemplateError";
  }
}

export interface TemplateScope {
  input: unknown;
  /** Outputs of the steps that ran, by step id. */
  steps: Record<string, unknown>;
}

/** A reference `input.a.b` or `steps.<id>.output.a`, split and checked. */
export interface TemplateRef {
  text: string;
  root: "input" | "steps";
  /** For `steps`: the step id. */
  stepId?: string;
  path: string[];
}

export function parseRef(text: string): TemplateRef {
  const parts = text.split(".");
  if (parts.some((part) => !SEGMENT.test(part))) {
    throw new TemplateError(
      `Template '{{${text}}}' is not a path (letters, digits, '_' and '-' separated by dots).`,
    );
  }
  if (parts[0] === "input") return { text, root: "input", path: parts.slice(1) };
  if (parts[0] === "steps" && parts.length >= 3 && parts[2] === "output") {
    return { text, root: "steps", stepId: parts[1], path: parts.slice(3) };
  }
  throw new TemplateError(
    `Template '{{${text}}}' must start with 'input.' or 'steps.<step id>.output'.`,
  );
}

/** Every template reference in a config value (for checking a definition). */
export function templateRefs(value: unknown): TemplateRef[] {
  if (typeof value === "string") {
    return [...value.matchAll(TEMPLATE)].map((match) => parseRef(match[1]));
  }
  if (Array.isArray(value)) return value.flatMap(templateRefs);
  if (value && typeof value === "object") return Object.values(value).flatMap(templateRefs);
  return [];
}

export const hasTemplate = (value: unknown) =>
  typeof value === "string" && value.search(TEMPLATE) !== -1;

function lookup(ref: TemplateRef, scope: TemplateScope): unknown {
  let value: unknown;
  if (ref.root === "input") {
    value = scope.input;
  } else {
    if (!Object.hasOwn(scope.steps, ref.stepId!)) {
      throw new TemplateError(
        `Template '{{${ref.text}}}': step '${ref.stepId}' has not run (yet).`,
      );
    }
    value = scope.steps[ref.stepId!];
  }
  for (let i = 0; i < ref.path.length; i++) {
    const key = ref.path[i];
    const container = value as Record<string, unknown> | unknown[] | null;
    const found = container !== null && typeof container === "object" &&
      (Array.isArray(container) ? /^\d+$/.test(key) && Number(key) < container.length : Object
        .hasOwn(container, key));
    if (!found) {
      const where = [
        ref.root === "input" ? "input" : `steps.${ref.stepId}.output`,
        ...ref.path.slice(0, i),
      ].join(".");
      throw new TemplateError(`Template '{{${ref.text}}}': ${where} has no '${key}'.`);
    }
    value = (container as Record<string, unknown>)[key];
  }
  return value;
}

const asText = (value: unknown) =>
  typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value);

/**
 * Thrown by `render` when the text it writes passes its limit: templates inside text copy
 * values, so a config of many of them could otherwise build strings of any size.
 */
export class RenderTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`Templates inside text wrote more than ${limit} characters.`);
    this.name = "RenderTooLarge";
  }
}

/**
 * The config with every template replaced by its value. A whole-string template keeps
 * the value itself (no copy); the text written for templates inside longer strings is
 * counted, and passing `maxTextLength` characters stops the render (`RenderTooLarge`).
 */
export function render(value: unknown, scope: TemplateScope, maxTextLength = Infinity): unknown {
  let written = 0;
  const interpolate = (ref: string) => {
    const text = asText(lookup(parseRef(ref), scope));
    written += text.length;
    if (written > maxTextLength) throw new RenderTooLarge(maxTextLength);
    return text;
  };
  const walk = (item: unknown): unknown => {
    if (typeof item === "string") {
      const whole = WHOLE_TEMPLATE.exec(item);
      if (whole) return lookup(parseRef(whole[1]), scope);
      return item.replace(TEMPLATE, (_, ref: string) => interpolate(ref));
    }
    if (Array.isArray(item)) return item.map(walk);
    if (item && typeof item === "object") {
      return Object.fromEntries(Object.entries(item).map(([key, inner]) => [key, walk(inner)]));
    }
    return item;
  };
  return walk(value);
}
