/**
 * Every error code the API answers with, and its HTTP status: the one table both the
 * runtime and the docs read. Codes are the spec's "Internal Error Codes", plus a few for
 * situations the spec leaves open (marked).
 */
export const ERROR_CODES = {
  VALIDATION_ERROR: 400,
  AUTH_INVALID_TOKEN: 401,
  AUTH_EXPIRED_TOKEN: 401,
  CREDITS_EXHAUSTED: 402,
  AUTH_INSUFFICIENT_SCOPE: 403,
  RESOURCE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405, // not in the spec: a method other than POST (or GET on health)
  WORKFLOW_ALREADY_RUNNING: 409,
  WORKFLOW_INACTIVE: 409, // not in the spec: executing an inactive or archived workflow
  INSTANCE_FINISHED: 409, // not in the spec: cancelling an instance that already ended
  AGENT_INACTIVE: 409,
  INVOICE_STATUS_CONFLICT: 409, // not in the spec: the invoice's status does not allow it
  IDEMPOTENCY_KEY_IN_USE: 409, // not in the spec: same Idempotency-Key still in flight
  PAYLOAD_TOO_LARGE: 413, // not in the spec: body over the endpoint's size limit
  IDEMPOTENCY_KEY_REUSED: 422, // not in the spec: same Idempotency-Key, different request
  RATE_LIMIT_EXCEEDED: 429,
  INTERNAL_ERROR: 500,
  INTEGRATION_ERROR: 502,
  SERVICE_UNAVAILABLE: 503, // the database is unreachable, or the readiness check failed
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ApiErrorOptions {
  details?: Record<string, unknown>;
  /** Extra members of the error object itself (the 429 body carries `retry_after`). */
  extra?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** A failure the client should see as it is. Anything else thrown becomes INTERNAL_ERROR. */
export class ApiError extends Error {
  readonly status: number;
  constructor(readonly code: ErrorCode, message: string, readonly options: ApiErrorOptions = {}) {
    super(message);
    this.name = "ApiError";
    this.status = ERROR_CODES[code];
  }

  /** What a record keeps of the error (an execution's, a job's, a step's `error`). */
  toRecord(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.options.details ? { details: this.options.details } : {}),
    };
  }

  toBody() {
    return {
      success: false as const,
      error: {
        code: this.code,
        message: this.message,
        ...(this.options.details ? { details: this.options.details } : {}),
        ...this.options.extra,
      },
    };
  }
}

export const notFound = (what: string, id?: string) =>
  new ApiError(
    "RESOURCE_NOT_FOUND",
    id ? `${what} '${id}' was not found.` : `${what} was not found.`,
  );

export const invalidField = (field: string, constraint: string, message: string) =>
  new ApiError("VALIDATION_ERROR", message, { details: { field, constraint } });
