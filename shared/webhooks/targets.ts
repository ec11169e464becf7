/**
 * Where a webhook may point: the outbound guard's rules (shared/platform/outbound/: http/https
 * only, every address the host resolves to must be public; loopback only where
 * BIVELIO_ALLOW_LOOPBACK_TARGETS allows it), plus https for live-environment webhooks.
 * Checked when a URL is saved, as a VALIDATION_ERROR naming `url`; every delivery checks
 * again (outboundFetch), so a name that later resolves elsewhere is refused then.
 */
import type { Environment } from "../platform/environment.ts";
import { invalidField } from "../platform/errors.ts";
import {
  checkOutboundUrl,
  OutboundBlockedError,
  OutboundNetworkError,
  type OutboundOptions,
} from "../platform/outbound/address-guard.ts";

/** Live webhooks carry production data: only over https (loopback aside, where allowed). */
export const requiresHttps = (environment: Environment) => environment === "live";

/**
 * Throws a VALIDATION_ERROR on `url` (constraint: the guard's reason, or `resolvable`)
 * when the target is refused. `options` is for tests (resolver, loopback).
 */
export async function checkWebhookUrl(
  url: string,
  environment: Environment,
  options: OutboundOptions = {},
): Promise<void> {
  try {
    await checkOutboundUrl(url, { requireHttps: requiresHttps(environment), ...options });
  } catch (error) {
    if (error instanceof OutboundBlockedError) {
      const message = error.reason === "https_required"
        ? "The URL must use https: live-environment webhooks are delivered only over https."
        : error.message;
      throw invalidField("url", error.reason, message);
    }
    if (error instanceof OutboundNetworkError) {
      throw invalidField("url", "resolvable", error.message);
    }
    throw error;
  }
}
