/**
 * The size of a value as JSON, without writing the JSON. Workflow data can hold the same
 * object many times over (a template that names a step's output twice makes an object
 * with two references to it), so its JSON can be exponentially larger than the memory it
 * takes: `JSON.stringify` on it would build that whole string before anyone could say no.
 * This walker adds up the bytes `JSON.stringify` would write (UTF-8) and stops as soon as
 * the total passes the limit, so measuring costs at most about `limit` steps.
 */

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** A string that JSON writes as itself between quotes: printable ASCII, no `"` or `\`. */
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Bytes of `JSON.stringify(text)`: quotes, escapes, and UTF-8 for the rest. */
function stringSize(text: string): number {
  if (PLAIN_ASCII.test(text)) return text.length + 2;
  let size = 2;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x22 || code === 0x5c) size += 2; // \" \\
    else if (code < 0x20) size += "\b\f\n\r\t".includes(text[i]) ? 2 : 6; // \n or \u0001
    else if (code < 0x80) size += 1;
    else if (code < 0x800) size += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        size += 4; // a pair: one 4-byte character
        i++;
      } else size += 6; // a lone surrogate is written as \ud800
    } else if (code >= 0xdc00 && code <= 0xdfff) size += 6;
    else size += 3;
  }
  return size;
}

/**
 * The number of bytes `JSON.stringify(value)` would give in UTF-8, if that is at most
 * `limit`; otherwise some number above `limit` (the walk stopped there). `undefined`,
 * functions and symbols count as JSON leaves them out (or as `null` in arrays).
 */
export function jsonSize(value: unknown, limit = Infinity): number {
  let total = 0;
  // Throwing is the quickest way out of a deep walk once the limit is passed.
  const over = {};
  const add = (bytes: number) => {
    total += bytes;
    if (total > limit) throw over;
  };
  const walk = (item: unknown, inArray: boolean) => {
    if (item !== null && typeof item === "object" && "toJSON" in item) {
      item = (item as { toJSON(): unknown }).toJSON();
    }
    switch (typeof item) {
      case "string":
        return add(stringSize(item));
      case "number":
        return add(Number.isFinite(item) ? String(item).length : 4); // non-finite: null
      case "boolean":
        return add(item ? 4 : 5);
      case "bigint":
        throw new TypeError("Do not know how to serialize a BigInt");
      case "object":
        break;
      default: // undefined, function, symbol
        return inArray ? add(4) : undefined;
    }
    if (item === null) return add(4);
    if (Array.isArray(item)) {
      add(2 + Math.max(0, item.length - 1)); // brackets and commas
      for (const element of item) walk(element, true);
      return;
    }
    add(2); // braces
    let members = 0;
    for (const [key, member] of Object.entries(item)) {
      if (member === undefined || typeof member === "function" || typeof member === "symbol") {
        continue;
      }
      add(stringSize(key) + 1 + (members++ > 0 ? 1 : 0)); // "key": and a comma
      walk(member, false);
    }
  };
  try {
    walk(value, false);
  } catch (error) {
    if (error !== over) throw error;
  }
  return total;
}

/** Whether `value` written as JSON takes more than `limit` bytes. */
export const jsonLargerThan = (value: unknown, limit: number) => jsonSize(value, limit) > limit;

/** `bytes` for people: 256 KiB, 4 MiB, 1.5 KiB, 300 bytes. */
export function formatBytes(bytes: number): string {
  if (bytes >= MiB) return `${+(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= KiB) return `${+(bytes / KiB).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}
