/**
 * Cases: queries and changes behind POST /v1/cases. Every function takes the caller's RLS
 * transaction. What a case points to (its contact, assignee and links) is checked as the
 * caller sees it, so another organization's records cannot be attached by id (foreign key
 * checks alone would not see row-level security).
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { invalidField, notFound } from "../platform/errors.ts";
import { emitEvent } from "../platform/events.ts";
import { pageWindow, paginationOf } from "../platform/pagination.ts";
import { isoTimestamp } from "../platform/time.ts";
import {
  type caseRecord,
  type CreateCase,
  type LinkKind,
  type LinksInput,
  type ListCases,
  type UpdateCase,
} from "./schemas.ts";

interface CaseRow {
  id: string;
  title: string;
  description: string;
  status: "open" | "in_progress" | "waiting" | "closed";
  contact_id: string | null;
  assignee_id: string | null;
  tags: string[];
  links: { kind: LinkKind; target_id: string }[] | null;
  closed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** Each link kind: the field that carries it and the table its records live in. */
const LINK_TABLES = {
  document: { field: "documents", table: "documents" },
  invoice: { field: "invoices", table: "invoices" },
  message: { field: "messages", table: "messages" },
} as const;

function caseToApi(row: CaseRow): z.input<typeof caseRecord> {
  const linked = (kind: LinkKind) =>
    (row.links ?? []).filter((l) => l.kind === kind).map((l) => l.target_id).sort();
  return {
    id: row.id,
    title: row.title,
    description: row.description,
    status: row.status,
    contact_id: row.contact_id,
    assignee_id: row.assignee_id,
    tags: row.tags,
    links: {
      documents: linked("document"),
      invoices: linked("invoice"),
      messages: linked("message"),
    },
    closed_at: isoTimestamp(row.closed_at),
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
  };
}

const selectCases = (tx: Tx) =>
  tx`
    select c.id, c.title, c.description, c.status, c.contact_id, c.assignee_id, c.tags,
           c.closed_at, c.created_at, c.updated_at,
           (select json_agg(json_build_object('kind', l.kind, 'target_id', l.target_id))
            from public.case_links l where l.case_id = c.id) as links
    from public.cases c
  `;

async function findCase(tx: Tx, id: string) {
  const [row] = await tx<CaseRow[]>`${selectCases(tx)} where c.id = ${id}`;
  if (!row) throw notFound("Case", id);
  return row;
}

export async function getCase(tx: Tx, id: string) {
  return caseToApi(await findCase(tx, id));
}

export async function listCases(tx: Tx, query: ListCases) {
  const filters = [tx`true`];
  if (query.status) filters.push(tx`c.status = ${query.status}`);
  if (query.contact_id) filters.push(tx`c.contact_id = ${query.contact_id}`);
  if (query.assignee_id) filters.push(tx`c.assignee_id = ${query.assignee_id}`);
  if (query.tags?.length) filters.push(tx`c.tags @> ${query.tags}::text[]`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const [rows, [{ total }]] = await Promise.all([
    tx<CaseRow[]>`
      ${selectCases(tx)} where ${where}
      order by c.created_at desc, c.id desc ${pageWindow(tx, query)}
    `,
    tx<{ total: number }[]>`select count(*)::int as total from public.cases c where ${where}`,
  ]);
  return { cases: rows.map(caseToApi), pagination: paginationOf(query, total) };
}

/** The contact exists for the caller; key-share locked so a delete meanwhile waits. */
async function checkContact(tx: Tx, contactId: string | null | undefined) {
  if (!contactId) return;
  const [found] = await tx`select 1 from public.contacts where id = ${contactId} for key share`;
  if (!found) {
    throw invalidField("contact_id", "exists", `Contact '${contactId}' was not found.`);
  }
}

/** The assignee is a member of the caller's organization. */
async function checkAssignee(tx: Tx, assigneeId: string | null | undefined) {
  if (!assigneeId) return;
  const [found] = await tx`
    select 1 from public.organization_members where user_id = ${assigneeId}
  `;
  if (!found) {
    throw invalidField(
      "assignee_id",
      "member",
      `User '${assigneeId}' is not a member of this organization.`,
    );
  }
}

/** Every linked record exists for the caller (each in its own group's table). */
async function checkLinks(tx: Tx, field: "links" | "link", links: LinksInput | undefined) {
  for (const [kind, { field: key, table }] of Object.entries(LINK_TABLES)) {
    const ids = links?.[key] ?? [];
    if (ids.length === 0) continue;
    // A group whose table does not exist yet has nothing to link to (checked first: a failed
    // query would end the transaction).
    const [{ present }] = await tx<{ present: boolean }[]>`
      select to_regclass(${"public." + table}) is not null as present
    `;
    const found = present
      ? await tx<{ id: string }[]>`select id from ${tx("public." + table)} where id = any(${ids})`
      : [];
    const known = new Set(found.map((r) => r.id));
    const missing = ids.findIndex((id) => !known.has(id));
    if (missing >= 0) {
      throw invalidField(
        `${field}.${key}.${missing}`,
        "exists",
        `The ${kind} '${ids[missing]}' was not found.`,
      );
    }
  }
}

const linkRows = (caseId: string, links: LinksInput | undefined) =>
  Object.entries(LINK_TABLES).flatMap(([kind, { field }]) =>
    (links?.[field] ?? []).map((target_id) => ({ case_id: caseId, kind, target_id }))
  );

async function addLinks(tx: Tx, caseId: string, links: LinksInput | undefined) {
  const rows = linkRows(caseId, links);
  if (rows.length === 0) return;
  await tx`
    insert into public.case_links ${tx(rows, "case_id", "kind", "target_id")}
    on conflict do nothing
  `;
}

export async function createCase(tx: Tx, input: CreateCase) {
  await checkContact(tx, input.contact_id);
  await checkAssignee(tx, input.assignee_id);
  await checkLinks(tx, "links", input.links);
  const [{ id }] = await tx<{ id: string }[]>`
    insert into public.cases (title, description, status, contact_id, assignee_id, tags)
    values (${input.title}, ${input.description}, ${input.status}, ${input.contact_id},
            ${input.assignee_id}, ${input.tags}::text[])
    returning id
  `;
  await addLinks(tx, id, input.links);
  const created = await getCase(tx, id);
  await emitEvent(tx, "case.created", created);
  return created;
}

/** The fields of a case a change touched, for case.updated's `changes`. */
type Changed = (keyof UpdateCase | "links")[];

export async function updateCase(tx: Tx, patch: UpdateCase) {
  // Locked first: concurrent updates of one case apply one after the other.
  const [locked] = await tx`select 1 from public.cases where id = ${patch.id} for update`;
  if (!locked) throw notFound("Case", patch.id);
  if (patch.contact_id !== undefined) await checkContact(tx, patch.contact_id);
  if (patch.assignee_id !== undefined) await checkAssignee(tx, patch.assignee_id);
  await checkLinks(tx, "link", patch.link);

  const changed: Changed = [];
  const sets = [];
  for (const field of ["title", "description", "contact_id", "assignee_id"] as const) {
    if (patch[field] !== undefined) {
      sets.push(tx`${tx(field)} = ${patch[field]}`);
      changed.push(field);
    }
  }
  if (patch.tags !== undefined) {
    sets.push(tx`tags = ${patch.tags}::text[]`);
    changed.push("tags");
  }
  if (patch.status !== undefined) {
    sets.push(tx`status = ${patch.status}, closed_at = null`);
    changed.push("status");
  }
  if (sets.length > 0) {
    await tx`
      update public.cases set ${sets.reduce((all, next) => tx`${all}, ${next}`)},
        updated_at = now()
      where id = ${patch.id}
    `;
  }
  const removed = linkRows(patch.id, patch.unlink);
  if (patch.link || removed.length > 0) {
    await addLinks(tx, patch.id, patch.link);
    for (const row of removed) {
      await tx`
        delete from public.case_links
        where case_id = ${row.case_id} and kind = ${row.kind} and target_id = ${row.target_id}
      `;
    }
    await tx`update public.cases set updated_at = now() where id = ${patch.id}`;
    changed.push("links");
  }
  const updated = await getCase(tx, patch.id);
  if (changed.length > 0) await emitEvent(tx, "case.updated", { ...updated, changes: changed });
  return updated;
}

/** Closes a case; closing a closed case changes nothing and says nothing. */
export async function closeCase(tx: Tx, id: string) {
  const [closed] = await tx`
    update public.cases set status = 'closed', closed_at = now(), updated_at = now()
    where id = ${id} and status <> 'closed'
    returning id
  `;
  const current = await getCase(tx, id);
  if (closed) await emitEvent(tx, "case.updated", { ...current, changes: ["status"] });
  return current;
}
