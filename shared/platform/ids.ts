/**
 * Resource ids: a type prefix and random base62 characters (`ct_…`, `wf_…`), made by
 * PostgreSQL's private.new_id(prefix) as column defaults. The API accepts only the right
 * prefix for each field, so a contact id sent as a workflow id is a clear 400, not a 404.
 */
import { z } from "zod";

/** The schema of an id with `prefix` (`"ct"`), named in messages as `noun` ("a contact"). */
export const prefixedId = (prefix: string, noun: string) =>
  z.string().regex(
    new RegExp(`^${prefix}_[0-9A-Za-z]{1,64}$`),
    `must be ${noun} id (${prefix}_…)`,
  );
