import { createGroupApp, defineAction } from "../platform/app.ts";
import { closeCase, createCase, getCase, listCases, updateCase } from "./cases.ts";
import {
  byCaseId,
  caseList,
  caseRecord,
  createCaseInput,
  listCasesInput,
  updateCaseInput,
} from "./schemas.ts";

/** POST /v1/cases[/<action>]: cases (files) with their contact, assignee and linked records. */
export const actions = [
  defineAction({
    name: "list",
    summary: "List cases (filters: status, contact_id, assignee_id, tags)",
    scope: "read",
    mutates: false,
    input: listCasesInput,
    output: caseList,
    handler: ({ tx, data }) => listCases(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get a case with its links",
    scope: "read",
    mutates: false,
    input: byCaseId,
    output: caseRecord,
    handler: ({ tx, data }) => getCase(tx, data.id),
  }),
  defineAction({
    name: "create",
    summary: "Open a case (writes case.created)",
    scope: "write",
    mutates: true,
    input: createCaseInput,
    output: caseRecord,
    handler: ({ tx, data }) => createCase(tx, data),
  }),
  defineAction({
    name: "update",
    summary: "Update a case: fields sent, links added (link) or removed (unlink); case.updated",
    scope: "write",
    mutates: true,
    input: updateCaseInput,
    output: caseRecord,
    handler: ({ tx, data }) => updateCase(tx, data),
  }),
  defineAction({
    name: "close",
    summary: "Close a case (case.updated); closing a closed case changes nothing",
    scope: "write",
    mutates: true,
    input: byCaseId,
    output: caseRecord,
    handler: ({ tx, data }) => closeCase(tx, data.id),
  }),
];

export default createGroupApp("cases", actions);
