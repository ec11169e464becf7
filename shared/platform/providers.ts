/**
 * Third-party services, one pattern for all. A provider has three faces:
 *
 * - **live**: its real client (an SDK or a thin HTTP client) against the base URL configured
 *   for it: the provider's production URL when deployed;
 * - **local stand-in**: the same live client with that base URL pointed at a stand-in in
 *   `local/` that speaks the provider's real wire protocol (the local stack and the tests run
 *   them; never deployed). It is a setting, not code: nothing in `shared/` knows a stand-in;
 * - **sandbox**: what a `bv_test_` caller gets: a simulation that never reaches the provider
 *   and answers in the same shape, marked as simulated.
 *
 * Code that calls a provider asks {@link clientFor} with the caller's environment and never
 * chooses a face itself, so a sandbox request cannot reach a live provider by mistake.
 */
import type { Environment } from "./environment.ts";

export interface Provider<Client> {
  /** A stable name: logs, docs and the list of providers. */
  name: string;
  /** One line: what it is and where its stand-in lives. */
  description: string;
  /** The real client, for the base URL configured (production, or a local stand-in). */
  live(): Client;
  /** The simulated client for sandbox callers: reaches nothing outside BiVelio. */
  sandbox(): Client;
}

const providers = new Map<string, Provider<unknown>>();

/**
 * Declares a provider (once per module) and registers it, so the list of providers is
 * derived from the code rather than kept by hand. Each face is built once, on first use.
 */
export function defineProvider<Client>(provider: Provider<Client>): Provider<Client> {
  if (providers.has(provider.name)) {
    throw new Error(`Provider '${provider.name}' is defined twice.`);
  }
  let live: Client | undefined;
  let sandbox: Client | undefined;
  const cached: Provider<Client> = {
    name: provider.name,
    description: provider.description,
    live: () => (live ??= provider.live()),
    sandbox: () => (sandbox ??= provider.sandbox()),
  };
  providers.set(provider.name, cached as Provider<unknown>);
  return cached;
}

/** The face of `provider` a caller in `environment` may use: sandbox callers get the simulation. */
export function clientFor<Client>(provider: Provider<Client>, environment: Environment): Client {
  return environment === "test" ? provider.sandbox() : provider.live();
}

/** Every provider defined so far (the modules that define them have been imported). */
export const definedProviders = (): Provider<unknown>[] => [...providers.values()];
