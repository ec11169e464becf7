/**
 * The JSON size walker (json-size.ts) and what storable-json.ts finds and parses, without
 * the stack.
 */
import assert from "node:assert/strict";
import { jsonLargerThan, jsonSize } from "./json-size.ts";
import {
  findUnstorable,
  InexactNumber,
  keepsExactly,
  parseJsonExactly,
  storableText,
} from "./storable-json.ts";

const utf8Length = (text: string) => new TextEncoder().encode(text).length;

Deno.test("jsonSize is the UTF-8 length of JSON.stringify", () => {
  const values: unknown[] = [
    null,
    true,
    false,
    0,
    -0,
    1.5e-7,
    1e21,
    -123456.789,
    NaN,
    Infinity,
    "",
    "plain ascii",
    'quote " and backslash \\',
    "control \n\t\r\b\f \u0000 \u0001 \u001f \u007f",
    "é ß € 中文 😀 \u2028",
    "lone \ud800 and \udfff, pair \ud83d\ude00, reversed \ude00\ud83d",
    [],
    {},
    [1, "a", null, undefined, () => 1, Symbol("s"), [[]]],
    { a: 1, b: undefined, c: () => 1, 'k"ey': { "é": [true, {}] }, d: null },
    { date: new Date("2026-12-01T10:00:00Z") },
    { nested: { deeper: { list: Array.from({ length: 50 }, (_, i) => ({ i, s: `v${i}` })) } } },
  ];
  for (const value of values) {
    assert.equal(jsonSize(value), utf8Length(JSON.stringify(value)), JSON.stringify(value));
  }
  assert.equal(jsonSize(undefined), 0);
});

Deno.test("jsonSize stops at the limit, even when shared references make the JSON huge", () => {
  // 60 levels of an object naming the one below twice: 2^60 copies of the leaf as JSON,
  // a few hundred bytes of memory.
  let value: unknown = { leaf: "x".repeat(1000) };
  for (let i = 0; i < 60; i++) value = { a: value, b: value };
  const started = performance.now();
  const size = jsonSize(value, 256 * 1024);
  assert.ok(size > 256 * 1024 && size < 256 * 1024 + 2000, String(size));
  assert.ok(jsonLargerThan(value, 1024 * 1024));
  assert.ok(performance.now() - started < 500, "measuring takes about `limit` steps");

  const small = { a: "b" }; // {"a":"b"} is 9 bytes
  assert.equal(jsonLargerThan(small, 9), false);
  assert.equal(jsonLargerThan(small, 8), true);
  assert.equal(jsonSize(small, 8) > 8, true);
});

Deno.test("numbers a double keeps exactly are parsed as numbers, others are marked", () => {
  for (const source of ["0", "-0", "1.0", "0.1", "1e300", "-1.5E-7", "9007199254740991", "1e21"]) {
    const parsed = parseJsonExactly(`[${source}, "${"1".repeat(20)}"]`) as unknown[];
    assert.equal(typeof parsed[0], "number", source);
    assert.equal(parsed[0], Number(source));
    assert.ok(keepsExactly(Number(source), source), source);
  }
  for (
    const source of [
      "1e309",
      "-1e309",
      "1e-400",
      "12345678901234567890",
      "9007199254740993",
      "0.10000000000000001",
      "123456789012345678.5",
    ]
  ) {
    const parsed = parseJsonExactly(`{"n": ${source}}`) as { n: unknown };
    assert.ok(parsed.n instanceof InexactNumber, source);
    assert.equal((parsed.n as InexactNumber).source, source);
    assert.deepEqual(findUnstorable({ data: parsed }), {
      path: ["data", "n"],
      problem: "inexact_number",
    });
  }
  // Without a number-like run the plain parse is used (same result).
  assert.deepEqual(parseJsonExactly('{"a": [1, 2.5, -3e2]}'), { a: [1, 2.5, -300] });
});

Deno.test("lone surrogates are found in values and keys, and replaced in stored text", () => {
  assert.deepEqual(findUnstorable({ a: ["ok", "x\ud800"] }), {
    path: ["a", 1],
    problem: "lone_surrogate",
  });
  assert.deepEqual(findUnstorable({ ["k\udc00"]: 1 }), {
    path: ["k\udc00"],
    problem: "lone_surrogate",
  });
  assert.equal(findUnstorable({ emoji: "😀 \ud83d\ude00" }), null);
  assert.equal(storableText("a\u0000b\ud800c"), "a\uFFFDb\uFFFDc");
});
