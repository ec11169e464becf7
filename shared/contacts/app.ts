import { z } from "zod";
import { createGroupApp, defineAction } from "../platform/app.ts";
import {
  contactId,
  createContact,
  createContactInput,
  deleteContact,
  getContact,
  listContacts,
  listContactsInput,
  updateContact,
  updateContactInput,
} from "./contacts.ts";
import { contact, contactList, deletedContact } from "./schemas.ts";

const byId = z.strictObject({ id: contactId });

/** POST /v1/contacts[/<action>]: the CRM. */
export const actions = [
  defineAction({
    name: "list",
    summary: "List or search contacts",
    paths: ["list", "search"],
    scope: "read",
    mutates: false,
    input: listContactsInput,
    output: contactList,
    handler: ({ tx, data }) => listContacts(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get a contact",
    scope: "read",
    mutates: false,
    input: byId,
    output: contact,
    handler: ({ tx, data }) => getContact(tx, data.id),
  }),
  defineAction({
    name: "create",
    summary: "Create a contact",
    scope: "write",
    mutates: true,
    input: createContactInput,
    output: contact,
    handler: ({ tx, data }) => createContact(tx, data),
  }),
  defineAction({
    name: "update",
    summary: "Update a contact (only the fields sent)",
    scope: "write",
    mutates: true,
    input: updateContactInput,
    output: contact,
    handler: ({ tx, data }) => updateContact(tx, data),
  }),
  defineAction({
    name: "delete",
    summary: "Delete a contact",
    scope: "write",
    mutates: true,
    input: byId,
    output: deletedContact,
    handler: ({ tx, data }) => deleteContact(tx, data.id),
  }),
];

export default createGroupApp("contacts", actions);
