import assert from "node:assert/strict";
import { canonicalJson } from "./canonical-json.ts";

Deno.test("key order does not change the text; nested objects and arrays too", () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }),
    '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}',
  );
  assert.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }));
});

Deno.test("array order matters; undefined members are left out; strings are escaped", () => {
  assert.notEqual(canonicalJson([1, 2]), canonicalJson([2, 1]));
  assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  assert.equal(canonicalJson({ 'k"': 'v"\n' }), '{"k\\"":"v\\"\\n"}');
  assert.equal(canonicalJson(undefined), "null");
});
