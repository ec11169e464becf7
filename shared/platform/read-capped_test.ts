import assert from "node:assert/strict";
import { readCapped } from "./read-capped.ts";

const streamOf = (...chunks: string[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });

Deno.test("readCapped joins a body within the limit and refuses one past it", async () => {
  assert.equal(new TextDecoder().decode((await readCapped(streamOf("ab", "cd"), 4))!), "abcd");
  assert.equal(await readCapped(streamOf("ab", "cde"), 4), null);
  assert.deepEqual(await readCapped(null, 4), new Uint8Array());
});

Deno.test("readCapped stops reading a body that never ends once it passes the limit", async () => {
  let pulls = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls++;
      controller.enqueue(new Uint8Array(1024));
    },
  });
  assert.equal(await readCapped(endless, 4096), null);
  assert.ok(pulls <= 6, `read ${pulls} chunks`);
});
