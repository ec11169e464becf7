/**
 * LOCAL DEVELOPMENT ONLY — never deployed. In production Supabase Storage serves
 * /storage/v1; this module only stands in for it in the local stack and the tests.
 *
 * An emulator of the part of Supabase Storage's HTTP API that `@supabase/supabase-js`'s storage
 * client (storage-js) uses from server code: buckets (create, get, list, update), objects
 * (upload with POST and `x-upsert`, PUT, download, remove) and signed URLs (one or many, and
 * GETting them). Like Storage it keeps buckets and objects' metadata in `storage.buckets` and
 * `storage.objects` (local/supabase-bootstrap.sql adds minimal ones; the buckets themselves come
 * from a migration, as on Supabase), and the bytes in files, here on disk in the stack's state
 * folder, named by a random version id so no object name ever becomes a file path.
 *
 * Faithful where callers can tell: error bodies are Storage's
 * `{"statusCode":"404","code":"NoSuchKey","error":"not_found","message":"Object not found"}`
 * with HTTP 400 for every error below 500 (Storage's renderer does the same; the real status is
 * the body's `statusCode`); object keys are checked with Storage's rule (no `.`/`..` segments,
 * no control or "avoid" characters, at most 1024 bytes); signed URL tokens are HS256 JWTs with
 * the project's JWT secret carrying `url` ("bucket/key"), `iat` and `exp`. Authorization:
 * only the service_role key (Bearer or apikey) may do anything, as only server code uses
 * Storage here; an anon or user token meets what Storage's default policies give it (nothing).
 */
import postgres from "postgres";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { readCapped } from "../shared/platform/read-capped.ts";

export interface StorageEmulatorOptions {
  /** A postgres.js pool connected as the superuser `postgres`. */
  sql: postgres.Sql;
  /** HS256 secret: verifies the API keys and signs signed-URL tokens (the project's JWT secret). */
  jwtSecret: string;
  /** The folder object bytes are kept in (created if missing). */
  directory: string;
  /** The project-wide upload limit in bytes; Supabase's default is 50 MiB. */
  globalFileSizeLimit?: number;
}

const DEFAULT_GLOBAL_LIMIT = 50 * 1024 * 1024;
/** Storage's bulk limit: at most this many objects per remove or batch sign. */
const MAX_OBJECTS_PER_REQUEST = 1000;
const PREFIX = "/storage/v1";

/** An error as Storage renders it: `statusCode` is the meaning, the HTTP status 400 or 500. */
class StorageError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly error: string = code,
  ) {
    super(message);
  }

  response() {
    const body = {
      statusCode: String(this.statusCode),
      code: this.code,
      error: this.error,
      message: this.message,
    };
    return Response.json(body, { status: this.statusCode >= 500 ? 500 : 400 });
  }
}

// The errors Storage answers with (its src/internal/errors/codes.ts), for the cases emulated.
const ERRORS = {
  noSuchBucket: () => new StorageError(404, "NoSuchBucket", "Bucket not found", "Bucket not found"),
  noSuchKey: () => new StorageError(404, "NoSuchKey", "Object not found", "not_found"),
  invalidKey: (key: string) => new StorageError(400, "InvalidKey", `Invalid key: ${key}`),
  invalidBucketName: () =>
    new StorageError(400, "InvalidBucketName", "Bucket name invalid", "Invalid Input"),
  invalidJwt: (message: string) => new StorageError(400, "InvalidJWT", message),
  invalidSignature: () => new StorageError(400, "InvalidSignature", "Invalid signature"),
  accessDenied: (message: string) => new StorageError(403, "AccessDenied", message, "Unauthorized"),
  keyExists: () =>
    new StorageError(409, "KeyAlreadyExists", "The resource already exists", "Duplicate"),
  bucketExists: () =>
    new StorageError(409, "BucketAlreadyExists", "The resource already exists", "Duplicate"),
  entityTooLarge: () =>
    new StorageError(
      413,
      "EntityTooLarge",
      "The object exceeded the maximum allowed size",
      "Payload too large",
    ),
  invalidMimeType: (type: string) =>
    new StorageError(
      415,
      "InvalidMimeType",
      `mime type ${type} is not supported`,
      "invalid_mime_type",
    ),
  invalidRequest: (message: string) => new StorageError(400, "InvalidRequest", message),
  notFoundRoute: (method: string, path: string) =>
    new StorageError(404, "NotFound", `Route ${method}:${path} not found`, "Not Found"),
};

// Storage's key rule (src/storage/limits.ts): any UTF-8 but controls, S3's "characters to
// avoid" and invisible characters; no `.` or `..` segment; at most 1024 bytes.
const VALID_OBJECT_KEY =
  // deno-lint-ignore no-control-regex -- refusing control characters is the point
  /^[^\u0000-\u001f\u007f\u0080-\u009f#\[\]{}^`"<>\\|%~\u{034F}\u{061C}\u{200B}\u{200E}\u{200F}\u{2028}\u{2029}\u{202A}-\u{202E}\u{2060}\u{2066}-\u{2069}\u{FEFF}]+$/u;
const PATH_TRAVERSAL = /(^|\/)\.{1,2}(\/|$)/;
const VALID_BUCKET_NAME = /^[A-Za-z0-9_!.*'() &$=@;:+,?-]{1,100}$/;

function isValidKey(key: string) {
  return VALID_OBJECT_KEY.test(key) && !PATH_TRAVERSAL.test(key) &&
    new TextEncoder().encode(key).length <= 1024;
}

interface BucketRow {
  id: string;
  name: string;
  owner: string | null;
  public: boolean;
  file_size_limit: string | null; // bigint
  allowed_mime_types: string[] | null;
  created_at: Date;
  updated_at: Date;
}

interface ObjectRow {
  id: string;
  bucket_id: string;
  name: string;
  owner: string | null;
  version: string;
  metadata: ObjectMetadata;
  created_at: Date;
  updated_at: Date;
  last_accessed_at: Date;
}

interface ObjectMetadata {
  eTag: string;
  size: number;
  mimetype: string;
  cacheControl: string;
  lastModified: string;
  contentLength: number;
  httpStatusCode: number;
}

const bucketJson = (b: BucketRow) => ({
  id: b.id,
  name: b.name,
  owner: b.owner ?? "",
  public: b.public,
  type: "STANDARD",
  file_size_limit: b.file_size_limit === null ? null : Number(b.file_size_limit),
  allowed_mime_types: b.allowed_mime_types,
  created_at: b.created_at.toISOString(),
  updated_at: b.updated_at.toISOString(),
});

const objectJson = (o: ObjectRow) => ({
  bucket_id: o.bucket_id,
  name: o.name,
  id: o.id,
  owner: o.owner ?? "",
  version: o.version,
  metadata: o.metadata,
  created_at: o.created_at.toISOString(),
  updated_at: o.updated_at.toISOString(),
  last_accessed_at: o.last_accessed_at.toISOString(),
});

/** Storage accepts a limit as bytes or as text with a unit ("20MB", decimal units). */
function parseSizeLimit(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  const match = typeof value === "string" && /^([0-9]+(?:\.[0-9]+)?)(gb|mb|kb|b)$/i.exec(value);
  if (!match) {
    throw ERRORS.invalidRequest("Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B");
  }
  const unit = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9 }[match[2].toLowerCase() as "b"];
  return Math.round(parseFloat(match[1]) * unit);
}

/** `image/png` matches `image/png` and `image/*`; parameters (`;charset=…`) are ignored. */
function mimeAllowed(allowed: string[] | null, type: string) {
  if (!allowed || allowed.length === 0) return true;
  const essence = type.split(";")[0].trim().toLowerCase();
  return allowed.some((pattern) => {
    const p = pattern.toLowerCase();
    return p === essence || (p.endsWith("/*") && essence.startsWith(p.slice(0, -1)));
  });
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

interface FormPart {
  name: string;
  filename: string | null;
  contentType: string | null;
  data: Uint8Array<ArrayBuffer>;
}

/**
 * The parts of a multipart/form-data body, or null if it is not one. Written here because
 * storage-js names its file part "" (`form.append("", blob)`), a part Deno's own
 * `Response.formData()` drops.
 */
function parseMultipart(body: Uint8Array<ArrayBuffer>, contentType: string): FormPart[] | null {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) return null;
  const delimiter = `--${boundary[1] ?? boundary[2]}`;
  // One character per byte, so string offsets are byte offsets.
  const text = new TextDecoder("latin1").decode(body);
  const parts: FormPart[] = [];
  let at = text.indexOf(delimiter);
  if (at !== 0) return null;
  for (;;) {
    at += delimiter.length;
    if (text.startsWith("--", at)) return parts;
    if (!text.startsWith("\r\n", at)) return null;
    const headersEnd = text.indexOf("\r\n\r\n", at);
    const next = text.indexOf(`\r\n${delimiter}`, headersEnd);
    if (headersEnd < 0 || next < 0) return null;
    const headers = new TextDecoder().decode(body.subarray(at + 2, headersEnd));
    const disposition = /^content-disposition:(.*)$/im.exec(headers)?.[1] ?? "";
    parts.push({
      name: /\bname="([^"]*)"/i.exec(disposition)?.[1] ?? "",
      filename: /\bfilename="([^"]*)"/i.exec(disposition)?.[1] ?? null,
      contentType: /^content-type:\s*(.*?)\s*$/im.exec(headers)?.[1] ?? null,
      data: body.slice(headersEnd + 4, next),
    });
    at = next + 2;
  }
}

/** jose's messages in the words of jsonwebtoken, which Storage verifies with. */
function jwtErrorMessage(error: unknown) {
  if (error instanceof joseErrors.JWTExpired) return "jwt expired";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "invalid signature";
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `jwt ${error.claim} invalid`;
  return "jwt malformed";
}

export function createStorageEmulator(
  opts: StorageEmulatorOptions,
): (req: Request) => Promise<Response> {
  const { sql, directory } = opts;
  const globalLimit = opts.globalFileSizeLimit ?? DEFAULT_GLOBAL_LIMIT;
  const secret = new TextEncoder().encode(opts.jwtSecret);
  Deno.mkdirSync(directory, { recursive: true });
  const fileOf = (version: string) => `${directory}/${version}`;

  /** The caller's role from its key (Authorization: Bearer, else apikey), as Storage reads it. */
  async function callerRole(req: Request): Promise<string> {
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.get("authorization") ?? "")?.[1];
    const token = bearer ?? req.headers.get("apikey");
    if (!token) throw ERRORS.accessDenied("Missing authorization header");
    try {
      const { payload } = await jwtVerify(token, secret, { algorithms: ["HS256"] });
      return typeof payload.role === "string" ? payload.role : "";
    } catch (error) {
      throw ERRORS.accessDenied(jwtErrorMessage(error));
    }
  }

  /**
   * Only the service role gets through. Other roles meet Storage's default policies (none):
   * reads find nothing, writes violate row-level security.
   */
  async function requireServiceRole(req: Request, access: "read" | "write" | "readBucket") {
    if ((await callerRole(req)) === "service_role") return;
    if (access === "readBucket") throw ERRORS.noSuchBucket();
    throw access === "read"
      ? ERRORS.noSuchKey()
      : ERRORS.accessDenied("new row violates row-level security policy");
  }

  async function findBucket(id: string): Promise<BucketRow> {
    const [bucket] = await sql<BucketRow[]>`select * from storage.buckets where id = ${id}`;
    if (!bucket) throw ERRORS.noSuchBucket();
    return bucket;
  }

  async function findObject(bucket: string, key: string): Promise<ObjectRow> {
    const [object] = await sql<ObjectRow[]>`
      select * from storage.objects where bucket_id = ${bucket} and name = ${key}
    `;
    if (!object) throw ERRORS.noSuchKey();
    return object;
  }

  /** The object's bytes as a response, with the headers Storage sends. */
  async function render(bucket: string, key: string, download: string | null) {
    // An upsert may replace the file between the lookup and the open: look again once.
    for (let attempt = 0;; attempt++) {
      const object = await findObject(bucket, key);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(fileOf(object.version));
      } catch (error) {
        if (error instanceof Deno.errors.NotFound && attempt === 0) continue;
        if (error instanceof Deno.errors.NotFound) throw ERRORS.noSuchKey();
        throw error;
      }
      const m = object.metadata;
      const headers: Record<string, string> = {
        "content-type": m.mimetype,
        "content-length": String(m.size),
        "cache-control": m.cacheControl,
        etag: `"${m.eTag}"`,
        "last-modified": new Date(m.lastModified).toUTCString(),
      };
      if (download !== null) {
        const name = download || key.split("/").pop()!;
        headers["content-disposition"] = `attachment; filename=${encodeURIComponent(name)};`;
      }
      return new Response(file.readable, { headers });
    }
  }

  /** The file's bytes and type from a raw body or storage-js's multipart form (Blob bodies). */
  async function readUpload(req: Request, limit: number) {
    const declared = Number(req.headers.get("content-length") ?? NaN);
    const contentType = req.headers.get("content-type") ?? "";
    const multipart = contentType.toLowerCase().startsWith("multipart/form-data");
    // The form's framing is a few hundred bytes; the file itself is checked once parsed.
    const readLimit = multipart ? limit + 64 * 1024 : limit;
    if (declared > readLimit) throw ERRORS.entityTooLarge();
    const body = await readCapped(req.body, readLimit);
    if (!body) throw ERRORS.entityTooLarge();
    const cacheHeader = req.headers.get("cache-control");
    if (!multipart) {
      return {
        bytes: body,
        mimetype: contentType || "text/plain;charset=UTF-8",
        cacheControl: cacheHeader ?? "no-cache",
      };
    }
    const parts = parseMultipart(body, contentType);
    if (!parts) throw ERRORS.invalidRequest("The multipart body could not be parsed");
    const file = parts.find((part) => part.filename !== null);
    if (!file) throw ERRORS.invalidRequest("No content provided");
    if (file.data.length > limit) throw ERRORS.entityTooLarge();
    const cacheField = parts.find((part) => part.name === "cacheControl" && part.filename === null);
    return {
      bytes: file.data,
      mimetype: file.contentType || "text/plain;charset=UTF-8",
      cacheControl: cacheField
        ? `max-age=${new TextDecoder().decode(cacheField.data)}`
        : "no-cache",
    };
  }

  async function upload(req: Request, bucketId: string, key: string, upsert: boolean) {
    await requireServiceRole(req, "write");
    if (!isValidKey(key)) throw ERRORS.invalidKey(key);
    const bucket = await findBucket(bucketId);
    const bucketLimit = bucket.file_size_limit === null ? null : Number(bucket.file_size_limit);
    const limit = bucketLimit === null ? globalLimit : Math.min(bucketLimit, globalLimit);
    const { bytes, mimetype, cacheControl } = await readUpload(req, limit);
    if (!mimeAllowed(bucket.allowed_mime_types, mimetype)) throw ERRORS.invalidMimeType(mimetype);

    const version = crypto.randomUUID();
    const metadata: ObjectMetadata = {
      eTag: (await sha256Hex(bytes)).slice(0, 32),
      size: bytes.length,
      mimetype,
      cacheControl,
      lastModified: new Date().toISOString(),
      contentLength: bytes.length,
      httpStatusCode: 200,
    };
    // The bytes first (written whole, then renamed into place), then the row that points at them.
    const partial = `${fileOf(version)}.part`;
    await Deno.writeFile(partial, bytes);
    await Deno.rename(partial, fileOf(version));
    let previous: string | null = null;
    let id: string;
    try {
      id = await sql.begin(async (tx) => {
        // One writer per key at a time, so the replaced version is known and its file removed.
        await tx`select pg_advisory_xact_lock(hashtext(${`${bucketId}/${key}`}))`;
        const [existing] = await tx<{ id: string; version: string }[]>`
          select id, version from storage.objects where bucket_id = ${bucketId} and name = ${key}
        `;
        if (existing && !upsert) throw ERRORS.keyExists();
        if (existing) {
          previous = existing.version;
          await tx`
            update storage.objects
            set version = ${version}, metadata = ${tx.json(metadata as never)}, updated_at = now(),
              last_accessed_at = now()
            where id = ${existing.id}
          `;
          return existing.id;
        }
        const [row] = await tx<{ id: string }[]>`
          insert into storage.objects (bucket_id, name, version, metadata)
          values (${bucketId}, ${key}, ${version}, ${tx.json(metadata as never)})
          returning id
        `;
        return row.id;
      });
    } catch (error) {
      await Deno.remove(fileOf(version)).catch(() => {});
      throw error;
    }
    if (previous) await Deno.remove(fileOf(previous)).catch(() => {});
    return Response.json({ Id: id, Key: `${bucketId}/${key}` });
  }

  async function signToken(bucket: string, key: string, expiresIn: number) {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ url: `${bucket}/${key}` })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(now)
      .setExpirationTime(now + expiresIn)
      .sign(secret);
    return `/object/sign/${bucket}/${key}?token=${token}`;
  }

  async function jsonBody(req: Request): Promise<Record<string, unknown>> {
    try {
      const body = await req.json();
      if (typeof body === "object" && body !== null && !Array.isArray(body)) return body;
    } catch {
      // answered below
    }
    throw ERRORS.invalidRequest("body must be a JSON object");
  }

  function expiresInOf(body: Record<string, unknown>) {
    const expiresIn = body.expiresIn;
    if (typeof expiresIn !== "number" || !Number.isInteger(expiresIn) || expiresIn < 1) {
      throw ERRORS.invalidRequest("body/expiresIn must be an integer >= 1");
    }
    return expiresIn;
  }

  async function signOne(req: Request, bucket: string, key: string) {
    await requireServiceRole(req, "read");
    const expiresIn = expiresInOf(await jsonBody(req));
    await findObject(bucket, key);
    return Response.json({ signedURL: await signToken(bucket, key, expiresIn) });
  }

  async function signMany(req: Request, bucket: string) {
    await requireServiceRole(req, "read");
    const body = await jsonBody(req);
    const expiresIn = expiresInOf(body);
    const paths = body.paths;
    if (
      !Array.isArray(paths) || paths.length === 0 || paths.length > MAX_OBJECTS_PER_REQUEST ||
      !paths.every((p) => typeof p === "string")
    ) {
      throw ERRORS.invalidRequest(
        `body/paths must be 1 to ${MAX_OBJECTS_PER_REQUEST} strings`,
      );
    }
    const found = new Set(
      (await sql<{ name: string }[]>`
        select name from storage.objects where bucket_id = ${bucket} and name = any(${paths})
      `).map((row) => row.name),
    );
    const signed = await Promise.all(paths.map(async (path: string) => ({
      error: found.has(path)
        ? null
        : "Either the object does not exist or you do not have access to it",
      path,
      signedURL: found.has(path) ? await signToken(bucket, path, expiresIn) : null,
    })));
    return Response.json(signed);
  }

  async function getSigned(url: URL, bucket: string, key: string) {
    const token = url.searchParams.get("token");
    if (!token) throw ERRORS.invalidRequest("querystring must have required property 'token'");
    let signedPath: unknown;
    try {
      const { payload } = await jwtVerify(token, secret, { algorithms: ["HS256"] });
      signedPath = payload.url;
    } catch (error) {
      throw ERRORS.invalidJwt(jwtErrorMessage(error));
    }
    if (signedPath !== `${bucket}/${key}`) throw ERRORS.invalidSignature();
    return await render(bucket, key, url.searchParams.get("download"));
  }

  async function removeMany(req: Request, bucket: string) {
    await requireServiceRole(req, "write");
    const prefixes = (await jsonBody(req)).prefixes;
    if (
      !Array.isArray(prefixes) || prefixes.length === 0 ||
      prefixes.length > MAX_OBJECTS_PER_REQUEST || !prefixes.every((p) => typeof p === "string")
    ) {
      throw ERRORS.invalidRequest(`body/prefixes must be 1 to ${MAX_OBJECTS_PER_REQUEST} strings`);
    }
    const removed = await sql<ObjectRow[]>`
      delete from storage.objects where bucket_id = ${bucket} and name = any(${prefixes})
      returning *
    `;
    await Promise.all(removed.map((o) => Deno.remove(fileOf(o.version)).catch(() => {})));
    return Response.json(removed.map(objectJson));
  }

  async function removeOne(req: Request, bucket: string, key: string) {
    await requireServiceRole(req, "write");
    const [removed] = await sql<ObjectRow[]>`
      delete from storage.objects where bucket_id = ${bucket} and name = ${key} returning *
    `;
    if (!removed) throw ERRORS.noSuchKey();
    await Deno.remove(fileOf(removed.version)).catch(() => {});
    return Response.json({ message: "Successfully deleted" });
  }

  async function createBucket(req: Request) {
    await requireServiceRole(req, "write");
    const body = await jsonBody(req);
    const id = body.id ?? body.name;
    if (typeof id !== "string" || !VALID_BUCKET_NAME.test(id)) {
      throw ERRORS.invalidBucketName();
    }
    const limit = parseSizeLimit(body.file_size_limit);
    if (limit !== null && limit > globalLimit) throw ERRORS.entityTooLarge();
    const types = Array.isArray(body.allowed_mime_types) ? body.allowed_mime_types : null;
    const [created] = await sql`
      insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
      values (${id}, ${id}, ${body.public === true}, ${limit}, ${types})
      on conflict (id) do nothing
      returning id
    `;
    if (!created) throw ERRORS.bucketExists();
    return Response.json({ name: id });
  }

  async function updateBucket(req: Request, id: string) {
    await requireServiceRole(req, "write");
    const body = await jsonBody(req);
    const bucket = await findBucket(id);
    const limit = "file_size_limit" in body
      ? parseSizeLimit(body.file_size_limit)
      : bucket.file_size_limit;
    if (limit !== null && Number(limit) > globalLimit) throw ERRORS.entityTooLarge();
    const types = "allowed_mime_types" in body
      ? (Array.isArray(body.allowed_mime_types) ? body.allowed_mime_types : null)
      : bucket.allowed_mime_types;
    await sql`
      update storage.buckets
      set public = ${typeof body.public === "boolean" ? body.public : bucket.public},
        file_size_limit = ${limit}, allowed_mime_types = ${types}, updated_at = now()
      where id = ${id}
    `;
    return Response.json({ message: "Successfully updated" });
  }

  async function route(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.slice(PREFIX.length);
    const method = req.method;
    // `/object/<bucket>/<key…>`: the key is everything after the bucket, percent-decoded once
    // (an encoded `/` or `..` in it is then refused by the key rule, as by Storage).
    const [, group, ...rest] = path.split("/");
    const decode = (text: string) => {
      try {
        return decodeURIComponent(text);
      } catch {
        throw ERRORS.invalidKey(text);
      }
    };

    if (group === "bucket") {
      const id = rest[0] === undefined ? undefined : decode(rest[0]);
      if (rest.length === 0 || (rest.length === 1 && id === "")) {
        if (method === "POST") return await createBucket(req);
        if (method === "GET") {
          await requireServiceRole(req, "read");
          const rows = await sql<BucketRow[]>`select * from storage.buckets order by name`;
          return Response.json(rows.map(bucketJson));
        }
      } else if (rest.length === 1 && id) {
        if (method === "GET") {
          await requireServiceRole(req, "readBucket");
          return Response.json(bucketJson(await findBucket(id)));
        }
        if (method === "PUT") return await updateBucket(req, id);
      }
    }

    if (group === "object" && rest.length >= 1) {
      const [first, ...tail] = rest;
      if (first === "sign" && tail.length >= 1) {
        const bucket = decode(tail[0]);
        const key = decode(tail.slice(1).join("/"));
        if (method === "POST" && tail.length === 1) return await signMany(req, bucket);
        if (method === "POST") return await signOne(req, bucket, key);
        if (method === "GET") return await getSigned(url, bucket, key);
      }
      if (first === "authenticated" && tail.length >= 2 && method === "GET") {
        await requireServiceRole(req, "read");
        return await render(decode(tail[0]), decode(tail.slice(1).join("/")), null);
      }
      const bucket = decode(first);
      const key = decode(tail.join("/"));
      if (tail.length === 0 && method === "DELETE") return await removeMany(req, bucket);
      if (tail.length >= 1) {
        if (method === "GET") {
          await requireServiceRole(req, "read");
          return await render(bucket, key, url.searchParams.get("download"));
        }
        if (method === "POST") {
          return await upload(req, bucket, key, req.headers.get("x-upsert") === "true");
        }
        if (method === "PUT") return await upload(req, bucket, key, true);
        if (method === "DELETE") return await removeOne(req, bucket, key);
      }
    }
    throw ERRORS.notFoundRoute(method, url.pathname);
  }

  return async (req: Request) => {
    try {
      return await route(req);
    } catch (error) {
      if (error instanceof StorageError) {
        await req.body?.cancel().catch(() => {});
        return error.response();
      }
      console.error("storage emulator:", error);
      return new StorageError(500, "InternalError", "Internal server error").response();
    }
  };
}
