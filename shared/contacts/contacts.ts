/**
 * CRM contacts: schemas, queries and changes, shared by the contacts endpoints and (later)
 * the workflow steps that create or update contacts. Every function takes the caller's
 * RLS transaction, so organization and environment are decided by Postgres.
 */
import { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { invalidField, notFound } from "../platform/errors.ts";
import { emitEvent } from "../platform/events.ts";
import { pageTotal, pageWindow, paginationInput, paginationOf } from "../platform/pagination.ts";
import { isoTimestamp } from "../platform/time.ts";
import { contact, contactId, contactList, contactType, deletedContact } from "./schemas.ts";

export { contactId };
const tag = z.string().trim().min(1).max(50);
const tags = z.array(tag).max(50).transform((list) => [...new Set(list)]);
const customFieldKey = z.string().min(1).max(100);
// Any JSON value (bodies are parsed JSON); not z.json(), whose recursion the OpenAPI
// generator cannot follow.
const customFieldValue = z.unknown();

const contactFields = {
  type: contactType,
  name: z.string().trim().min(1).max(200),
  email: z.email().max(320).nullable(),
  phone: z.string().trim().min(3).max(40).regex(/^\+?[0-9 ()./-]+$/, "must be a phone number")
    .nullable(),
  company_id: contactId.nullable(),
  tags,
};

export const createContactInput = z.strictObject({
  ...contactFields,
  type: contactFields.type.default("person"),
  email: contactFields.email.optional(),
  phone: contactFields.phone.optional(),
  company_id: contactFields.company_id.optional(),
  tags: tags.default([]),
  custom_fields: z.record(customFieldKey, customFieldValue).refine(
    (o) => Object.keys(o).length <= 100,
    {
      message: "at most 100 custom fields",
    },
  ).default({}),
});

export const updateContactInput = z.strictObject({
  id: contactId,
  type: contactFields.type.optional(),
  name: contactFields.name.optional(),
  email: contactFields.email.optional(),
  phone: contactFields.phone.optional(),
  company_id: contactFields.company_id.optional(),
  tags: tags.optional(),
  /** Merged key by key; a null value removes that key. */
  custom_fields: z.record(customFieldKey, customFieldValue).optional(),
});

export const listContactsInput = z.strictObject({
  search: z.string().trim().max(200).optional(),
  type: contactFields.type.optional(),
  tags: z.array(tag).max(20).optional(),
  ...paginationInput,
});

export type CreateContact = z.output<typeof createContactInput>;
export type UpdateContact = z.output<typeof updateContactInput>;
export type ListContacts = z.output<typeof listContactsInput>;

export interface ContactRow {
  id: string;
  type: z.output<typeof contactType>;
  name: string;
  email: string | null;
  phone: string | null;
  company_id: string | null;
  tags: string[];
  custom_fields: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

/** The API's representation of a contact. */
export function contactToApi(row: ContactRow): z.input<typeof contact> {
  return {
    id: row.id,
    type: row.type,
    name: row.name,
    email: row.email,
    phone: row.phone,
    company_id: row.company_id,
    tags: row.tags,
    custom_fields: row.custom_fields,
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
  };
}

const columns = (tx: Tx) =>
  tx`id, type, name, email, phone, company_id, tags, custom_fields, created_at, updated_at`;

// Must match the expression of the contacts_search_idx trigram index.
const searchable = (tx: Tx) =>
  tx`(name || ' ' || coalesce(email, '') || ' ' || coalesce(phone, ''))`;

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (ch) => `\\${ch}`);

export async function listContacts(
  tx: Tx,
  query: ListContacts,
): Promise<z.input<typeof contactList>> {
  const filters = [tx`true`];
  if (query.search) filters.push(tx`${searchable(tx)} ilike ${`%${escapeLike(query.search)}%`}`);
  if (query.type) filters.push(tx`type = ${query.type}`);
  if (query.tags?.length) filters.push(tx`tags @> ${query.tags}::text[]`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);

  const rows = await tx<(ContactRow & { total: number })[]>`
    select ${columns(tx)}, count(*) over ()::int as total
    from public.contacts
    where ${where}
    order by created_at desc, id desc
    ${pageWindow(tx, query)}
  `;
  const total = await pageTotal(tx, query, rows[0]?.total, tx`public.contacts where ${where}`);
  return {
    contacts: rows.map(contactToApi),
    pagination: paginationOf(query, total),
  };
}

export async function getContact(tx: Tx, id: string) {
  const [row] = await tx<ContactRow[]>`select ${columns(tx)} from public.contacts where id = ${id}`;
  if (!row) throw notFound("Contact", id);
  return contactToApi(row);
}

/**
 * company_id must name a company contact the caller can see (same org and environment).
 * The company row is share-locked until commit, so a concurrent delete or change to a
 * person either finishes first (and this check sees it) or waits: otherwise the insert
 * would fail on the foreign key (a 500) or link a person.
 */
async function checkCompany(tx: Tx, companyId: string | null | undefined, selfId?: string) {
  if (!companyId) return;
  if (companyId === selfId) {
    throw invalidField("company_id", "not_self", "A contact cannot be its own company.");
  }
  const [company] = await tx<{ type: string }[]>`
    select type from public.contacts where id = ${companyId} for share
  `;
  if (!company) {
    throw invalidField("company_id", "exists", `Company contact '${companyId}' was not found.`);
  }
  if (company.type !== "company") {
    throw invalidField("company_id", "company", `Contact '${companyId}' is not a company.`);
  }
}

export async function createContact(tx: Tx, input: CreateContact) {
  await checkCompany(tx, input.company_id);
  const customFields = Object.fromEntries(
    Object.entries(input.custom_fields).filter(([, value]) => value !== null),
  );
  const [row] = await tx<ContactRow[]>`
    insert into public.contacts (type, name, email, phone, company_id, tags, custom_fields)
    values (${input.type}, ${input.name}, ${input.email ?? null}, ${input.phone ?? null},
            ${input.company_id ?? null}, ${input.tags}::text[], ${tx.json(customFields as never)})
    returning ${columns(tx)}
  `;
  const contact = contactToApi(row);
  await emitEvent(tx, "contact.created", contact);
  return contact;
}

export async function updateContact(tx: Tx, patch: UpdateContact) {
  const { id } = patch;
  await checkCompany(tx, patch.company_id, id);
  const sets = [];
  if (patch.type !== undefined) sets.push(tx`type = ${patch.type}`);
  if (patch.name !== undefined) sets.push(tx`name = ${patch.name}`);
  if (patch.email !== undefined) sets.push(tx`email = ${patch.email}`);
  if (patch.phone !== undefined) sets.push(tx`phone = ${patch.phone}`);
  if (patch.company_id !== undefined) sets.push(tx`company_id = ${patch.company_id}`);
  if (patch.tags !== undefined) sets.push(tx`tags = ${patch.tags}::text[]`);
  if (patch.custom_fields !== undefined) {
    const entries = Object.entries(patch.custom_fields);
    const merged = Object.fromEntries(entries.filter(([, value]) => value !== null));
    const removed = entries.filter(([, value]) => value === null).map(([key]) => key);
    sets.push(
      tx`custom_fields = (custom_fields || ${tx.json(merged as never)}) - ${removed}::text[]`,
    );
  }
  if (sets.length === 0) return await getContact(tx, id);

  if (patch.type === "person") {
    // Locked first: a contact being linked to it meanwhile (checkCompany share-locks this
    // row) has committed before the check below, or waits for this update.
    await tx`select from public.contacts where id = ${id} for update`;
    const [linked] = await tx`select 1 from public.contacts where company_id = ${id} limit 1`;
    if (linked) {
      throw invalidField(
        "type",
        "company_in_use",
        "This company has contacts linked to it; unlink them before making it a person.",
      );
    }
  }
  const [row] = await tx<ContactRow[]>`
    update public.contacts
    set ${sets.reduce((all, next) => tx`${all}, ${next}`)}, updated_at = now()
    where id = ${id}
    returning ${columns(tx)}
  `;
  if (!row) throw notFound("Contact", id);
  const contact = contactToApi(row);
  await emitEvent(tx, "contact.updated", contact);
  return contact;
}

export async function deleteContact(
  tx: Tx,
  id: string,
): Promise<z.input<typeof deletedContact>> {
  const [row] = await tx`delete from public.contacts where id = ${id} returning id`;
  if (!row) throw notFound("Contact", id);
  return { id, deleted: true };
}
