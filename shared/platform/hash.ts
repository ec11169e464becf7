import { createHash } from "node:crypto";

/** SHA-256 as hex. node:crypto, not crypto.subtle: synchronous and far cheaper per call. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
