/** Templates (templates.ts) without the stack: parsing, references, rendering, limits. */
import assert from "node:assert/strict";
import {
  hasTemplate,
  parseRef,
  render,
  RenderTooLarge,
  TemplateError,
  templateRefs,
} from "./templates.ts";

const scope = {
  input: { name: "Ana", age: 31, tags: ["a", "b"], nested: { deep: { value: null } } },
  steps: { client: { id: "ct_1", score: 0.5 } },
};

Deno.test("parseRef splits input and step references and refuses anything else", () => {
  assert.deepEqual(parseRef("input.a.b"), { text: "input.a.b", root: "input", path: ["a", "b"] });
  assert.deepEqual(parseRef("steps.client.output.id"), {
    text: "steps.client.output.id",
    root: "steps",
    stepId: "client",
    path: ["id"],
  });
  for (const bad of ["env.SECRET", "steps.client.id", "steps.client", "input..a", "input.a b"]) {
    assert.throws(() => parseRef(bad), TemplateError, bad);
  }
  assert.throws(() => parseRef("constructor.prototype"), /must start with 'input.'/);
});

Deno.test("templateRefs finds every reference in nested values; hasTemplate sees one", () => {
  const refs = templateRefs({ a: ["{{input.x}} and {{ steps.s.output.y }}"], b: { c: 1 } });
  assert.deepEqual(refs.map((ref) => ref.text), ["input.x", "steps.s.output.y"]);
  assert.equal(hasTemplate("hi {{input.x}}"), true);
  assert.equal(hasTemplate("no template {here}"), false);
  assert.equal(hasTemplate(42), false);
});

Deno.test("a whole-string template keeps the value's type; inside text it is written as text", () => {
  assert.deepEqual(
    render({
      age: "{{input.age}}",
      tags: "{{ input.tags }}",
      first: "{{input.tags.0}}",
      nothing: "{{input.nested.deep.value}}",
      text: "Hello {{input.name}}, {{input.age}} {{input.tags}}",
      score: "{{steps.client.output.score}}",
      list: ["{{steps.client.output.id}}", 1, true],
    }, scope),
    {
      age: 31,
      tags: ["a", "b"],
      first: "a",
      nothing: null,
      text: 'Hello Ana, 31 ["a","b"]',
      score: 0.5,
      list: ["ct_1", 1, true],
    },
  );
});

Deno.test("render is data substitution only: no expression is evaluated", () => {
  assert.throws(() => render("{{input.age + 1}}", scope), TemplateError);
  assert.throws(() => render("{{ process.env }}", scope), TemplateError);
  assert.equal(render("{not a template}", scope), "{not a template}");
});

Deno.test("a missing path or a step that has not run is an error naming the template", () => {
  assert.throws(
    () => render("{{input.missing}}", scope),
    /Template '\{\{input.missing\}\}': input has no 'missing'/,
  );
  assert.throws(() => render("{{input.tags.5}}", scope), /input.tags has no '5'/);
  assert.throws(() => render("{{input.name.length}}", scope), /input.name has no 'length'/);
  assert.throws(
    () => render("{{steps.later.output.x}}", scope),
    /step 'later' has not run/,
  );
  assert.throws(() => render("{{input.__proto__}}", scope), /has no '__proto__'/);
});

Deno.test("text written by templates inside strings is bounded; whole values are not copied", () => {
  const big = { input: { s: "x".repeat(1000) }, steps: {} };
  assert.throws(() => render(["a {{input.s}}", "b {{input.s}}"], big, 1500), RenderTooLarge);
  assert.equal((render("{{input.s}}", big, 10) as string).length, 1000);
});
