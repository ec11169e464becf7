/**
 * File storage: Supabase Storage through supabase-js's storage client, used by server code
 * only, with the project's service role key (Supabase gives every function
 * SUPABASE_SERVICE_ROLE_KEY and SUPABASE_URL). Locally SUPABASE_URL is the gateway, which serves
 * a Storage emulator at /storage/v1 (local/storage-emulator.ts); nothing here knows that.
 *
 * Buckets are private and made by a migration (supabase/migrations/*_storage_buckets.sql):
 * files are read only through this module and through signed URLs, which work for anyone
 * holding them until they expire.
 *
 * The sandbox face is the same Storage, not a simulation: Storage is BiVelio's own
 * infrastructure, not a third party a test caller could set off (no message leaves, nothing is
 * charged), and a sandbox document's `url` must work like a live one. What differs is the
 * folder: every path a face is given is kept under its environment's folder (`live/…`,
 * `test/…`) and cannot leave it (`.`/`..` segments are refused), so a sandbox caller can never
 * name a live file and the 24-hour sandbox purge can remove everything under `test/`.
 */
import { createClient } from "@supabase/supabase-js";
import { config } from "./config.ts";
import type { Sql } from "./db.ts";
import type { Environment } from "./environment.ts";
import { ApiError } from "./errors.ts";
import { defineProvider } from "./providers.ts";

export interface StoredObject {
  bytes: Uint8Array;
  contentType: string;
}

export interface BucketOptions {
  /** Bytes; Storage refuses bigger uploads (the project's global limit caps it too). */
  fileSizeLimit: number;
  /** MIME types the bucket accepts (`image/*` allowed); null for any. */
  allowedMimeTypes: string[] | null;
}

/** One environment's view of Storage. Paths are relative to its folder (`<folder>/<path>`). */
export interface ObjectStorage {
  /** `live` or `test`: the folder of every path given to this face. */
  readonly folder: Environment;
  /**
   * Stores `bytes` at `path`, replacing what was there (so a retried step writes the same
   * file again rather than failing). Over the bucket's limit: 413 PAYLOAD_TOO_LARGE; a type
   * the bucket refuses: 400 VALIDATION_ERROR.
   */
  putObject(bucket: string, path: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /** An absolute URL anyone can GET the file from until it expires. Missing file: 404. */
  signedUrl(bucket: string, path: string, expiresInSeconds: number): Promise<string>;
  /** The file, or null when there is none. */
  getObject(bucket: string, path: string): Promise<StoredObject | null>;
  /** Removes the files (missing ones are skipped); returns how many were removed. */
  removeObjects(bucket: string, paths: string[]): Promise<number>;
  /** Creates the bucket (private) or brings its limits to `options`. */
  ensureBucket(name: string, options: BucketOptions): Promise<void>;
}

/** A Storage answer this module does not turn into an API error (a bug or an outage: a 500). */
export class StorageRequestFailed extends Error {
  constructor(operation: string, readonly statusCode: string | undefined, message: string) {
    super(`Storage ${operation} failed (${statusCode ?? "no status"}): ${message}`);
    this.name = "StorageRequestFailed";
  }
}

// Storage's own key rule, minus what supabase-js would mangle in a URL (`?` ends the path,
// `#`, `%`): letters, digits and `_ - . ! * ' ( ) & $ @ = ; : + , space`, in segments that are
// neither empty nor `.`/`..` (fetch resolves those, so `a/../../x` would escape the bucket).
const SAFE_SEGMENT = /^[\p{L}\p{N}_\-.!*'()&$@=;:+, ]+$/u;
const MAX_KEY_BYTES = 1024;

/** Whether `path` is a key this module sends to Storage as is (relative, no traversal). */
export function isSafeObjectPath(path: string): boolean {
  const segments = path.split("/");
  return path.length > 0 && new TextEncoder().encode(path).length <= MAX_KEY_BYTES - 5 &&
    segments.every((s) => SAFE_SEGMENT.test(s) && s !== "." && s !== "..");
}

/**
 * A caller's file name made safe as one path segment: characters Storage or a URL would
 * trouble replaced by `_`, at most 200 characters, never `.`/`..` or empty.
 */
export function safeFileName(name: string): string {
  const cleaned = [...name.normalize("NFC")]
    .map((ch) => (SAFE_SEGMENT.test(ch) ? ch : "_"))
    .join("")
    .trim()
    .slice(0, 200);
  return cleaned === "" || /^\.+$/.test(cleaned) ? "file" : cleaned;
}

type StorageApi = ReturnType<typeof createClient>["storage"];
type StorageErrorLike = { message: string; statusCode?: string };

function objectStorage(storage: StorageApi, folder: Environment): ObjectStorage {
  const key = (path: string) => {
    if (!isSafeObjectPath(path)) {
      // Paths are built by our code; a caller's file name goes through safeFileName first.
      throw new TypeError(`Unsafe storage path: ${JSON.stringify(path)}`);
    }
    return `${folder}/${path}`;
  };
  const failed = (operation: string, error: StorageErrorLike) =>
    new StorageRequestFailed(operation, error.statusCode, error.message);

  return {
    folder,
    async putObject(bucket, path, bytes, contentType) {
      const { error } = await storage.from(bucket).upload(key(path), bytes, {
        contentType,
        upsert: true,
      });
      if (!error) return;
      const status = (error as StorageErrorLike).statusCode;
      if (status === "413") {
        throw new ApiError("PAYLOAD_TOO_LARGE", "The file is larger than its storage accepts.");
      }
      if (status === "415") {
        throw new ApiError("VALIDATION_ERROR", `Files of type ${contentType} are not accepted.`, {
          details: { constraint: "mime_type" },
        });
      }
      throw failed("upload", error);
    },
    async signedUrl(bucket, path, expiresInSeconds) {
      const { data, error } = await storage.from(bucket).createSignedUrl(
        key(path),
        expiresInSeconds,
      );
      if (data) return data.signedUrl;
      if ((error as StorageErrorLike).statusCode === "404") {
        throw new ApiError("RESOURCE_NOT_FOUND", "The stored file was not found.");
      }
      throw failed("sign", error);
    },
    async getObject(bucket, path) {
      const { data, error } = await storage.from(bucket).download(key(path));
      if (data) return { bytes: new Uint8Array(await data.arrayBuffer()), contentType: data.type };
      if ((error as StorageErrorLike).statusCode === "404") return null;
      throw failed("download", error);
    },
    async removeObjects(bucket, paths) {
      if (paths.length === 0) return 0;
      let removed = 0;
      // Storage removes at most 1000 objects per request.
      for (let start = 0; start < paths.length; start += 1000) {
        const { data, error } = await storage.from(bucket).remove(
          paths.slice(start, start + 1000).map(key),
        );
        if (error) throw failed("remove", error);
        removed += data.length;
      }
      return removed;
    },
    async ensureBucket(name, options) {
      const settings = {
        public: false,
        fileSizeLimit: options.fileSizeLimit,
        allowedMimeTypes: options.allowedMimeTypes,
      };
      const { data: bucket, error } = await storage.getBucket(name);
      if (bucket) {
        const same = !bucket.public && bucket.file_size_limit === options.fileSizeLimit &&
          JSON.stringify(bucket.allowed_mime_types ?? null) ===
            JSON.stringify(options.allowedMimeTypes);
        if (same) return;
        const updated = await storage.updateBucket(name, settings);
        if (updated.error) throw failed("updateBucket", updated.error);
        return;
      }
      if ((error as StorageErrorLike).statusCode !== "404") throw failed("getBucket", error);
      const created = await storage.createBucket(name, settings);
      // Made at the same moment by another process: it exists, which is what was asked.
      if (created.error && (created.error as StorageErrorLike).statusCode !== "409") {
        throw failed("createBucket", created.error);
      }
    },
  };
}

/** One storage client per process: the service role, server side, no session of its own. */
let client: StorageApi | undefined;
function serviceStorage(): StorageApi {
  client ??= createClient(config.supabaseUrl, config.serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  }).storage;
  return client;
}

export const storage = defineProvider<ObjectStorage>({
  name: "storage",
  description:
    "Supabase Storage via supabase-js (service role); locally the gateway's emulator (local/storage-emulator.ts)",
  live: () => objectStorage(serviceStorage(), "live"),
  sandbox: () => objectStorage(serviceStorage(), "test"),
});

/**
 * Removes sandbox files (`test/…`) older than `olderThanHours` (the spec's 24 hours), in every
 * bucket; returns how many. Storage's files can only be removed through its API (a SQL delete
 * on storage.objects would leave the bytes behind, and Supabase refuses it), so the expired
 * names are read from storage.objects, which Storage keeps (as the local emulator does), and
 * removed with the service role. Meant for a scheduled job beside the sandbox rows' purge.
 */
export async function purgeExpiredSandboxFiles(sql: Sql, olderThanHours = 24): Promise<number> {
  let removed = 0;
  for (;;) {
    const expired = await sql<{ bucket_id: string; names: string[] }[]>`
      select bucket_id, array_agg(name) as names
      from (
        select bucket_id, name from storage.objects
        where name like 'test/%' and created_at < now() - make_interval(hours => ${olderThanHours})
        order by created_at
        limit 1000
      ) batch
      group by bucket_id
    `;
    if (expired.length === 0) return removed;
    for (const { bucket_id, names } of expired) {
      const { data, error } = await serviceStorage().from(bucket_id).remove(names);
      if (error) throw new StorageRequestFailed("remove", error.statusCode, error.message);
      // Nothing removed means Storage no longer has them: stop rather than loop forever.
      if (data.length === 0) return removed;
      removed += data.length;
    }
  }
}

/** The buckets the migration creates, for code that names them. */
export const BUCKETS = { documents: "documents", invoices: "invoices" } as const;
