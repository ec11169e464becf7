/**
 * The shape of BiVelio API keys: `bv_<live|test>_<sk|pk>_` + 40 base62 random characters
 * (≈238 bits) + a 6-character base62 CRC32 checksum of everything before it. The checksum
 * lets secret scanners recognise a real key and lets us reject typos without a database
 * round trip. Only the SHA-256 of a key is ever stored.
 */
import { sha256Hex } from "../platform/hash.ts";

import type { Environment } from "../platform/environment.ts";

export type KeyType = "secret" | "publishable";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LENGTH = 40;
const CHECKSUM_LENGTH = 6;
const KEY_PATTERN = /^bv_(live|test)_(sk|pk)_([0-9A-Za-z]{46})$/;

export function keyPrefix(environment: Environment, type: KeyType) {
  return `bv_${environment}_${type === "secret" ? "sk" : "pk"}_`;
}

function randomBase62(length: number): string {
  // Rejection sampling keeps every character uniformly likely.
  let out = "";
  while (out.length < length) {
    for (const byte of crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

const utf8 = new TextEncoder();

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of utf8.encode(text)) {
    crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

export interface GeneratedKey {
  key: string;
  prefix: string;
  /** First characters after the prefix and the last four: what lists show. */
  start: string;
  lastFour: string;
}

export function generateApiKey(environment: Environment, type: KeyType): GeneratedKey {
  const prefix = keyPrefix(environment, type);
  const body = prefix + randomBase62(RANDOM_LENGTH);
  const key = body + checksum(body);
  return {
    key,
    prefix,
    start: key.slice(prefix.length, prefix.length + 4),
    lastFour: key.slice(-4),
  };
}

export interface ParsedKey {
  environment: Environment;
  type: KeyType;
}

/** Whether a string looks like one of our keys (right prefix), valid or not. */
export const looksLikeApiKey = (value: string) => value.startsWith("bv_");

/** Parses a key and checks its checksum; null when it cannot be a key we issued. */
export function parseApiKey(key: string): ParsedKey | null {
  const match = KEY_PATTERN.exec(key);
  if (!match) return null;
  const body = key.slice(0, -CHECKSUM_LENGTH);
  if (checksum(body) !== key.slice(-CHECKSUM_LENGTH)) return null;
  return {
    environment: match[1] as Environment,
    type: match[2] === "sk" ? "secret" : "publishable",
  };
}

export function hashApiKey(key: string): string {
  return sha256Hex(key);
}
