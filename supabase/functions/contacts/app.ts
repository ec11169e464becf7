import { z } from "zod";
import { createGroupApp, defineAction } from "../../../shared/app.ts";
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
} from "../../../shared/contacts.ts";

const byId = z.strictObject({ id: contactId });

/** POST /v1/contacts[/<action>]: the CRM. */
export default createGroupApp("contacts", [
  defineAction({
    name: "list",
    paths: ["list", "search"],
    scope: "read",
    input: listContactsInput,
    handler: ({ tx, data }) => listContacts(tx, data),
  }),
  defineAction({
    name: "get",
    scope: "read",
    input: byId,
    handler: ({ tx, data }) => getContact(tx, data.id),
  }),
  defineAction({
    name: "create",
    scope: "write",
    input: createContactInput,
    handler: ({ tx, data }) => createContact(tx, data),
  }),
  defineAction({
    name: "update",
    scope: "write",
    input: updateContactInput,
    handler: ({ tx, data }) => updateContact(tx, data),
  }),
  defineAction({
    name: "delete",
    scope: "write",
    input: byId,
    handler: ({ tx, data }) => deleteContact(tx, data.id),
  }),
]);
