/** The cases group's inputs and answers. */
import { z } from "zod";
import { contactId } from "../contacts/schemas.ts";
import { prefixedId } from "../platform/ids.ts";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";

export const caseId = prefixedId("case", "a case");
export const CASE_STATUSES = ["open", "in_progress", "waiting", "closed"] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a case can link to, each with its id prefix. */
export const LINK_KINDS = { document: "doc", invoice: "inv", message: "msg" } as const;
export type LinkKind = keyof typeof LINK_KINDS;

const tags = z.array(z.string().trim().min(1).max(50)).max(50)
  .transform((list) => [...new Set(list)]);
const links = z.strictObject({
  documents: z.array(prefixedId("doc", "a document")).max(100).optional(),
  invoices: z.array(prefixedId("inv", "an invoice")).max(100).optional(),
  messages: z.array(prefixedId("msg", "a message")).max(100).optional(),
});
export type LinksInput = z.output<typeof links>;

const caseFields = {
  title: z.string().trim().min(1).max(200),
  description: z.string().max(5000),
  contact_id: contactId.nullable(),
  /** A member of the organization (their user id). */
  assignee_id: z.string().regex(UUID, "must be a user id (uuid)").nullable(),
  tags,
};

export const createCaseInput = z.strictObject({
  ...caseFields,
  description: caseFields.description.default(""),
  contact_id: caseFields.contact_id.default(null),
  assignee_id: caseFields.assignee_id.default(null),
  tags: caseFields.tags.default([]),
  status: z.enum(["open", "in_progress", "waiting"]).default("open"),
  links: links.default({}),
});

export const updateCaseInput = z.strictObject({
  id: caseId,
  title: caseFields.title.optional(),
  description: caseFields.description.optional(),
  contact_id: caseFields.contact_id.optional(),
  assignee_id: caseFields.assignee_id.optional(),
  tags: caseFields.tags.optional(),
  /** Any status but closed (use `close`); "open" reopens a closed case. */
  status: z.enum(["open", "in_progress", "waiting"]).optional(),
  /** Links added. */
  link: links.optional(),
  /** Links removed. */
  unlink: links.optional(),
});

export const listCasesInput = z.strictObject({
  status: z.enum(CASE_STATUSES).optional(),
  contact_id: contactId.optional(),
  assignee_id: caseFields.assignee_id.unwrap().optional(),
  tags: z.array(z.string().min(1).max(50)).max(20).optional(),
  ...paginationInput,
});

export const byCaseId = z.strictObject({ id: caseId });

export type CreateCase = z.output<typeof createCaseInput>;
export type UpdateCase = z.output<typeof updateCaseInput>;
export type ListCases = z.output<typeof listCasesInput>;

export const caseRecord = z.strictObject({
  id: caseId,
  title: z.string(),
  description: z.string(),
  status: z.enum(CASE_STATUSES),
  contact_id: contactId.nullable(),
  assignee_id: z.string().nullable(),
  tags: z.array(z.string()),
  links: z.strictObject({
    documents: z.array(z.string()),
    invoices: z.array(z.string()),
    messages: z.array(z.string()),
  }),
  closed_at: timestamp.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
}).meta({ id: "Case" });

export const caseList = z.strictObject({
  cases: z.array(caseRecord),
  pagination,
}).meta({ id: "CaseList" });
