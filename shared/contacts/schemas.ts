/**
 * What the contacts actions answer: the one definition of each response's `data`, from
 * which the mappers take their types, OpenAPI its named schemas and the tests their check.
 * (The input schemas stay in contacts.ts, beside the queries that use them.)
 */
import { z } from "zod";
import { prefixedId } from "../platform/ids.ts";
import { pagination } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";

export const contactId = prefixedId("ct", "a contact");
export const contactType = z.enum(["person", "company"]);

export const contact = z.strictObject({
  id: contactId,
  type: contactType,
  name: z.string(),
  email: z.string().nullable(),
  phone: z.string().nullable(),
  /** The company contact this one belongs to. */
  company_id: contactId.nullable(),
  tags: z.array(z.string()),
  custom_fields: z.record(z.string(), z.unknown()),
  created_at: timestamp,
  updated_at: timestamp,
}).meta({ id: "Contact" });
export type Contact = z.output<typeof contact>;

export const contactList = z.strictObject({
  contacts: z.array(contact),
  pagination,
}).meta({ id: "ContactList" });

export const deletedContact = z.strictObject({
  id: contactId,
  deleted: z.literal(true),
}).meta({ id: "DeletedContact" });
