import { createGroupApp } from "../platform/app.ts";
import { formGeneration } from "../generation/form.ts";
import { generateAction } from "../generation/generate.ts";

/** POST /v1/forms/generate: a form definition from a prompt (3 credits). */
export const actions = [generateAction(formGeneration)];

export default createGroupApp("forms", actions);
