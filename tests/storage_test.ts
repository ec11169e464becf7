/**
 * Storage: the real supabase-js storage client against the local Storage emulator behind the
 * gateway (/storage/v1), and the storage provider (shared/platform/storage.ts) end to end.
 */
import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import * as jose from "jose";
import { db, stack, test } from "./helpers/stack.ts";
import { clientFor } from "../shared/platform/providers.ts";

// The provider reads these as a deployed function would (Supabase sets both).
Deno.env.set("SUPABASE_URL", stack.api_url);
Deno.env.set("SUPABASE_SERVICE_ROLE_KEY", stack.service_role_key);
const { storage, isSafeObjectPath, safeFileName } = await import("../shared/platform/storage.ts");

const clientOptions = { auth: { persistSession: false, autoRefreshToken: false } };
const service = createClient(stack.api_url, stack.service_role_key, clientOptions).storage;
const anon = createClient(stack.api_url, stack.anon_key, clientOptions).storage;

const unique = () => crypto.randomUUID().slice(0, 8);
/** A small "PDF": the magic bytes, then random bytes (every value 0-255 likely present). */
function fakePdf(size = 4096) {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
  bytes.set(new TextEncoder().encode("%PDF-1.7\n"));
  return bytes;
}
const bytesOf = async (blob: Blob) => new Uint8Array(await blob.arrayBuffer());

/** A bucket of its own for tests that need a particular limit. */
async function bucketWith(fileSizeLimit: number, allowedMimeTypes: string[] | null = null) {
  const id = `test-${unique()}`;
  const { error } = await service.createBucket(id, {
    public: false,
    fileSizeLimit,
    allowedMimeTypes,
  });
  assert.equal(error, null);
  return id;
}

test("storage: the migration's buckets exist, private, with their limits", async () => {
  const { data: documents } = await service.getBucket("documents");
  assert.equal(documents?.public, false);
  assert.equal(documents?.file_size_limit, 20 * 1024 * 1024);
  const { data: invoices } = await service.getBucket("invoices");
  assert.equal(invoices?.public, false);
  assert.deepEqual(invoices?.allowed_mime_types, ["application/pdf"]);
  const { error } = await service.getBucket(`missing-${unique()}`);
  assert.equal((error as { statusCode?: string }).statusCode, "404");
});

test("storage: an upload downloads as the same bytes with its content type", async () => {
  const path = `t/${unique()}/report.pdf`;
  const pdf = fakePdf();
  const uploaded = await service.from("documents").upload(path, pdf, {
    contentType: "application/pdf",
  });
  assert.equal(uploaded.error, null);
  assert.equal(uploaded.data?.fullPath, `documents/${path}`);

  const { data, error } = await service.from("documents").download(path);
  assert.equal(error, null);
  assert.equal(data!.type, "application/pdf");
  assert.deepEqual(await bytesOf(data!), pdf);

  // A Blob goes as multipart form data; its own type is kept.
  const blobPath = `t/${unique()}/photo.png`;
  const png = crypto.getRandomValues(new Uint8Array(1000));
  const viaForm = await service.from("documents").upload(
    blobPath,
    new Blob([png], { type: "image/png" }),
  );
  assert.equal(viaForm.error, null);
  const downloaded = await service.from("documents").download(blobPath);
  assert.equal(downloaded.data!.type, "image/png");
  assert.deepEqual(await bytesOf(downloaded.data!), png);
});

test("storage: an existing path is a 409 without upsert, replaced with it or with update", async () => {
  const path = `t/${unique()}/a.txt`;
  const bucket = service.from("documents");
  await bucket.upload(path, new TextEncoder().encode("one"), { contentType: "text/plain" });
  const again = await bucket.upload(path, new TextEncoder().encode("two"));
  assert.equal((again.error as { statusCode?: string }).statusCode, "409");
  assert.equal(await (await bucket.download(path)).data!.text(), "one");

  assert.equal(
    (await bucket.upload(path, new TextEncoder().encode("two"), { upsert: true })).error,
    null,
  );
  assert.equal(await (await bucket.download(path)).data!.text(), "two");
  assert.equal((await bucket.update(path, new TextEncoder().encode("three"))).error, null);
  assert.equal(await (await bucket.download(path)).data!.text(), "three");
  // The replaced versions' files are gone: one row, one file for it.
  const [row] = await db<{ version: string }[]>`
    select version from storage.objects where bucket_id = 'documents' and name = ${path}
  `;
  const dir = Deno.env.get("BIVELIO_TEST_STACK")!.replace(/local\.json$/, "storage");
  const files = [...Deno.readDirSync(dir)].map((entry) => entry.name);
  assert.ok(files.includes(row.version));
  assert.equal(files.filter((name) => name.endsWith(".part")).length, 0);
});

test("storage: a signed URL GETs the same bytes and type; a fresh one each time", async () => {
  const path = `t/${unique()}/signed file.pdf`;
  const pdf = fakePdf(10_000);
  await service.from("documents").upload(path, pdf, { contentType: "application/pdf" });

  const { data, error } = await service.from("documents").createSignedUrl(path, 60);
  assert.equal(error, null);
  const url = new URL(data!.signedUrl);
  assert.equal(url.origin, stack.api_url);
  assert.equal(url.pathname, `/storage/v1/object/sign/documents/${encodeURI(path)}`);
  // No key needed: the token is the permission.
  const response = await fetch(data!.signedUrl);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/pdf");
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), pdf);

  const { payload } = await jose.jwtVerify(
    url.searchParams.get("token")!,
    new TextEncoder().encode(stack.jwt_secret),
  );
  assert.equal(payload.url, `documents/${path}`);
  assert.equal(payload.exp! - payload.iat!, 60);

  // Many at once: a missing path gets an error of its own.
  const many = await service.from("documents").createSignedUrls([path, "t/missing.pdf"], 60);
  assert.equal(many.error, null);
  assert.equal(many.data![0].error, null);
  assert.deepEqual(
    new Uint8Array(await (await fetch(many.data![0].signedUrl!)).arrayBuffer()),
    pdf,
  );
  assert.equal(many.data![1].signedUrl, null);
  assert.ok(many.data![1].error);
});

test("storage: an expired, altered or foreign signed URL token is refused", async () => {
  const path = `t/${unique()}/secret.pdf`;
  const other = `t/${unique()}/other.pdf`;
  for (const p of [path, other]) {
    await service.from("documents").upload(p, fakePdf(100), { contentType: "application/pdf" });
  }
  const { data } = await service.from("documents").createSignedUrl(path, 60);
  const signed = new URL(data!.signedUrl);
  const token = signed.searchParams.get("token")!;
  const secret = new TextEncoder().encode(stack.jwt_secret);
  const get = async (target: string, withToken: string) => {
    const response = await fetch(
      `${stack.api_url}/storage/v1/object/sign/documents/${target}?token=${withToken}`,
    );
    return { status: response.status, body: await response.json() };
  };

  const sign = (claims: jose.JWTPayload, exp: number, key = secret) =>
    new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(exp - 60).setExpirationTime(exp).sign(key);
  const now = Math.floor(Date.now() / 1000);

  const expired = await get(path, await sign({ url: `documents/${path}` }, now - 1));
  assert.equal(expired.status, 400);
  assert.deepEqual(expired.body, {
    statusCode: "400",
    code: "InvalidJWT",
    error: "InvalidJWT",
    message: "jwt expired",
  });

  // The payload changed to name another file: the signature no longer matches.
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(new TextDecoder().decode(jose.base64url.decode(payload)));
  const forgedPayload = jose.base64url.encode(
    JSON.stringify({ ...claims, url: `documents/${other}` }),
  );
  const altered = await get(other, `${header}.${forgedPayload}.${signature}`);
  assert.equal(altered.status, 400);
  assert.equal(altered.body.message, "invalid signature");

  const wrongKey = await get(
    path,
    await sign({ url: `documents/${path}` }, now + 60, new TextEncoder().encode("not the secret")),
  );
  assert.equal(wrongKey.body.code, "InvalidJWT");

  // A genuine token for one file does not open another.
  const foreign = await get(other, token);
  assert.equal(foreign.status, 400);
  assert.equal(foreign.body.code, "InvalidSignature");

  assert.equal((await get(path, "garbage")).body.message, "jwt malformed");
  // The genuine one still works.
  assert.equal((await fetch(signed)).status, 200);
});

test("storage: an upload over the bucket's limit or of a refused type is refused", async () => {
  const bucket = await bucketWith(1024, ["application/pdf", "image/*"]);
  const files = service.from(bucket);
  assert.equal(
    (await files.upload("exact.pdf", fakePdf(1024), { contentType: "application/pdf" })).error,
    null,
  );

  const tooBig = await files.upload("big.pdf", fakePdf(1025), { contentType: "application/pdf" });
  const error = tooBig.error as { statusCode?: string; message: string };
  assert.equal(error.statusCode, "413");
  assert.equal(error.message, "The object exceeded the maximum allowed size");
  assert.equal((await files.download("big.pdf")).error?.message, "Object not found");
  // The same through a form (a Blob).
  const viaForm = await files.upload(
    "big2.pdf",
    new Blob([fakePdf(1025)], { type: "application/pdf" }),
  );
  assert.equal((viaForm.error as { statusCode?: string }).statusCode, "413");

  const wrongType = await files.upload("page.html", new TextEncoder().encode("<p>"), {
    contentType: "text/html",
  });
  assert.equal((wrongType.error as { statusCode?: string }).statusCode, "415");
  assert.equal(
    (await files.upload("p.png", fakePdf(10), { contentType: "image/png" })).error,
    null,
  );

  // The documents bucket's own limit (20 MiB) applies too.
  const huge = await service.from("documents").upload(
    `t/${unique()}/huge.pdf`,
    fakePdf(20 * 1024 * 1024 + 1),
    { contentType: "application/pdf" },
  );
  assert.equal((huge.error as { statusCode?: string }).statusCode, "413");
});

test("storage: removed files are gone, and their signed URLs with them", async () => {
  const paths = [`t/${unique()}/1.pdf`, `t/${unique()}/2.pdf`];
  for (const p of paths) {
    await service.from("documents").upload(p, fakePdf(100), { contentType: "application/pdf" });
  }
  const { data: signed } = await service.from("documents").createSignedUrl(paths[0], 60);
  const removed = await service.from("documents").remove([...paths, "t/never-there.pdf"]);
  assert.equal(removed.error, null);
  assert.deepEqual(removed.data!.map((o) => o.name).sort(), [...paths].sort());
  for (const p of paths) {
    const { error } = await service.from("documents").download(p);
    assert.equal((error as { statusCode?: string }).statusCode, "404");
  }
  const response = await fetch(signed!.signedUrl);
  assert.equal(response.status, 400);
  assert.equal((await response.json()).code, "NoSuchKey");
  const sign = await service.from("documents").createSignedUrl(paths[0], 60);
  assert.equal((sign.error as { statusCode?: string }).statusCode, "404");
});

test("storage: the anon key, a user's token or no key gets nothing", async () => {
  const path = `t/${unique()}/private.pdf`;
  await service.from("documents").upload(path, fakePdf(100), { contentType: "application/pdf" });

  const upload = await anon.from("documents").upload(`t/${unique()}/x.pdf`, fakePdf(10));
  assert.equal((upload.error as { statusCode?: string }).statusCode, "403");
  const download = await anon.from("documents").download(path);
  assert.equal((download.error as { statusCode?: string }).statusCode, "404");
  const sign = await anon.from("documents").createSignedUrl(path, 60);
  assert.ok(sign.error);
  const remove = await anon.from("documents").remove([path]);
  assert.ok(remove.error);
  assert.ok((await anon.getBucket("documents")).error);
  assert.ok((await anon.createBucket(`anon-${unique()}`)).error);

  const userToken = await new jose.SignJWT({ role: "authenticated", sub: crypto.randomUUID() })
    .setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h")
    .sign(new TextEncoder().encode(stack.jwt_secret));
  const asUser = await fetch(`${stack.api_url}/storage/v1/object/documents/${path}`, {
    headers: { authorization: `Bearer ${userToken}` },
  });
  assert.equal(asUser.status, 400);
  assert.equal((await asUser.json()).statusCode, "404");
  const noKey = await fetch(`${stack.api_url}/storage/v1/object/documents/${path}`);
  assert.equal((await noKey.json()).statusCode, "403");

  // The file is still there for the service role.
  assert.equal((await service.from("documents").download(path)).error, null);
});

test("storage: keys with . or .. segments are refused, encoded or not", async () => {
  for (const key of ["..%2Fescape.pdf", "a%2F..%2F..%2Fb.pdf", "%2E%2E%2Fx", "a/.%2Fb"]) {
    const response = await fetch(`${stack.api_url}/storage/v1/object/documents/${key}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${stack.service_role_key}`,
        "content-type": "application/pdf",
      },
      body: fakePdf(10),
    });
    const body = await response.json();
    assert.equal(response.status, 400, key);
    assert.equal(body.code, "InvalidKey", key);
  }
  const objects = await db`select name from storage.objects where name like '%..%'`;
  assert.equal(objects.length, 0);
});

test("storage provider: put, signed URL, get and remove, each environment in its own folder", async () => {
  const live = clientFor(storage, "live");
  const sandbox = clientFor(storage, "test");
  const path = `org_${unique()}/doc_${unique()}/${safeFileName("Factura 03/2026.pdf")}`;
  const pdf = fakePdf(3000);

  await live.putObject("documents", path, pdf, "application/pdf");
  const url = await live.signedUrl("documents", path, 300);
  assert.ok(url.startsWith(`${stack.api_url}/storage/v1/object/sign/documents/live/`), url);
  const response = await fetch(url);
  assert.equal(response.headers.get("content-type"), "application/pdf");
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), pdf);
  assert.deepEqual(await live.getObject("documents", path), {
    bytes: pdf,
    contentType: "application/pdf",
  });

  // The same relative path in the sandbox is another file, under test/.
  assert.equal(await sandbox.getObject("documents", path), null);
  const sandboxBytes = fakePdf(50);
  await sandbox.putObject("documents", path, sandboxBytes, "application/pdf");
  const raw = await service.from("documents").download(`test/${path}`);
  assert.deepEqual(await bytesOf(raw.data!), sandboxBytes);
  assert.deepEqual((await live.getObject("documents", path))!.bytes, pdf);

  // Putting again replaces (a retried step writes the same file again).
  await live.putObject("documents", path, sandboxBytes, "application/pdf");
  assert.deepEqual((await live.getObject("documents", path))!.bytes, sandboxBytes);

  assert.equal(await live.removeObjects("documents", [path, "missing.pdf"]), 1);
  assert.equal(await live.getObject("documents", path), null);
  await assert.rejects(live.signedUrl("documents", path, 60), { code: "RESOURCE_NOT_FOUND" });
  assert.equal((await sandbox.getObject("documents", path))!.bytes.length, 50);
  assert.equal(await sandbox.removeObjects("documents", [path]), 1);
});

test("storage provider: limits and types become API errors; unsafe paths never leave", async () => {
  const live = clientFor(storage, "live");
  const bucket = `test-${unique()}`;
  await live.ensureBucket(bucket, { fileSizeLimit: 2048, allowedMimeTypes: ["application/pdf"] });
  // Again with other limits: the bucket is brought to them.
  await live.ensureBucket(bucket, { fileSizeLimit: 1024, allowedMimeTypes: ["application/pdf"] });
  const { data } = await service.getBucket(bucket);
  assert.equal(data?.file_size_limit, 1024);
  assert.equal(data?.public, false);

  await assert.rejects(
    live.putObject(bucket, "big.pdf", fakePdf(1025), "application/pdf"),
    { code: "PAYLOAD_TOO_LARGE", status: 413 },
  );
  await assert.rejects(
    live.putObject(bucket, "x.png", fakePdf(10), "image/png"),
    { code: "VALIDATION_ERROR" },
  );

  for (
    const path of [
      "../x.pdf",
      "a/../../b.pdf",
      "./a",
      "a//b",
      "",
      "/abs.pdf",
      "a?b",
      "a#b",
      "a%2Fb",
    ]
  ) {
    assert.equal(isSafeObjectPath(path), false, path);
    await assert.rejects(live.putObject(bucket, path, fakePdf(10), "application/pdf"), TypeError);
    await assert.rejects(live.getObject(bucket, path), TypeError);
  }
  assert.equal(safeFileName(".."), "file");
  assert.equal(safeFileName("../../etc/passwd"), ".._.._etc_passwd");
  assert.ok(isSafeObjectPath(`a/${safeFileName("../../etc/passwd")}`));
  assert.equal(safeFileName("résumé (final).pdf"), "résumé (final).pdf");
});

test("storage: files survive a restart of the emulator (the gateway)", async () => {
  const path = `t/${unique()}/kept.pdf`;
  const pdf = fakePdf(2000);
  await service.from("documents").upload(path, pdf, { contentType: "application/pdf" });
  const { data: signed } = await service.from("documents").createSignedUrl(path, 600);

  const readPid = () => Number(Deno.readTextFileSync(stack.gateway_pid_file));
  const crashed = readPid();
  Deno.kill(crashed, "SIGKILL");
  const deadline = Date.now() + 20_000;
  let status = 0;
  while (status !== 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    status = await fetch(`${stack.api_url}/v1/health`).then(async (response) => {
      await response.body?.cancel();
      return response.status;
    }, () => 0);
  }
  assert.equal(status, 200, "the gateway is back");
  assert.notEqual(readPid(), crashed);

  const { data } = await service.from("documents").download(path);
  assert.deepEqual(await bytesOf(data!), pdf);
  // A URL signed before the restart still works (the key is the project's JWT secret).
  assert.deepEqual(new Uint8Array(await (await fetch(signed!.signedUrl)).arrayBuffer()), pdf);
});

test("storage: the sandbox purge removes test/ files older than 24 hours, nothing else", async () => {
  const { purgeExpiredSandboxFiles } = await import("../shared/platform/storage.ts");
  const sandbox = clientFor(storage, "test");
  const live = clientFor(storage, "live");
  const old = `purge_${unique()}/old.pdf`;
  const fresh = `purge_${unique()}/fresh.pdf`;
  await sandbox.putObject("documents", old, fakePdf(10), "application/pdf");
  await sandbox.putObject("documents", fresh, fakePdf(10), "application/pdf");
  await live.putObject("documents", old, fakePdf(10), "application/pdf");
  await db`
    update storage.objects set created_at = now() - interval '25 hours'
    where bucket_id = 'documents' and name in (${`test/${old}`}, ${`live/${old}`})
  `;

  assert.ok(await purgeExpiredSandboxFiles(db) >= 1);
  assert.equal(await sandbox.getObject("documents", old), null);
  assert.ok(await sandbox.getObject("documents", fresh));
  assert.ok(await live.getObject("documents", old), "live files are never purged");
  assert.equal(await purgeExpiredSandboxFiles(db), 0);
});
