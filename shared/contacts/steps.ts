/**
 * The contacts group's workflow steps: create_contact and update_contact take the contacts
 * API's fields and make their change in the transaction that records the step.
 */
import { ApiError } from "../platform/errors.ts";
import { defineStep, StepFailure, type StepType } from "../workflows/steps.ts";
import {
  createContact,
  createContactInput,
  updateContact,
  updateContactInput,
} from "./contacts.ts";

/** Contact errors (company not found, …) are the caller's data: retrying will not help. */
async function contactStep<T>(run: () => Promise<T>): Promise<{ output: T }> {
  try {
    return { output: await run() };
  } catch (error) {
    if (error instanceof ApiError && error.status < 500) {
      throw new StepFailure(error.code, error.message, false, error.options.details);
    }
    throw error;
  }
}

export const CONTACT_STEP_TYPES: Record<string, StepType> = {
  create_contact: defineStep({
    effect: "transactional",
    scope: { group: "contacts", level: "write" },
    config: createContactInput,
    run: ({ tx, config }) => contactStep(() => createContact(tx, config)),
  }),

  update_contact: defineStep({
    effect: "transactional",
    scope: { group: "contacts", level: "write" },
    config: updateContactInput,
    run: ({ tx, config }) => contactStep(() => updateContact(tx, config)),
  }),
};
