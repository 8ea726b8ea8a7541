import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import {
  formatSpecErrors,
  loadPipelineFile,
  parsePipelineText,
  pipelineJsonSchema,
  type LoadResult,
} from '../../pipeline';
import { FULL_EXAMPLE, REFERENCE_DIR, generateDocs } from '../../scripts/gen-docs';
import { commandBlocks, type CommandBlock } from '../helpers/doc-blocks';

const ROOT = resolve(__dirname, '..', '..');

function filesUnder(dir: string, suffixes: string[]): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && suffixes.some((s) => entry.name.endsWith(s)))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/** The ```yaml blocks of a Markdown file that are whole pipelines. */
function pipelineBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ya?ml\n([\s\S]*?)^```$/gm)]
    .map((m) => m[1])
    .filter((block) => /^kind: Pipeline$/m.test(block));
}

function assertValid(result: LoadResult, where: string): void {
  if (!result.ok) assert.fail(`${where} is not a valid pipeline:\n${formatSpecErrors(result.errors)}`);
}

describe('generated reference docs', () => {
  test('the committed reference is exactly what scripts/gen-docs.ts generates (run `npm run docs` after changing the schema)', () => {
    for (const [name, content] of Object.entries(generateDocs())) {
      const committed = readFileSync(join(REFERENCE_DIR, name), 'utf8');
      assert.equal(committed, content, `docs/reference/${name} is out of date: run npm run docs`);
    }
  });

  test('generating twice gives byte-identical output', () => {
    assert.deepEqual(generateDocs(), generateDocs());
  });

  test('the example in pipeline.md is the full example and validates', () => {
    const blocks = pipelineBlocks(readFileSync(join(REFERENCE_DIR, 'pipeline.md'), 'utf8'));
    assert.equal(blocks.length, 1);
    assert.equal(blocks[0], FULL_EXAMPLE);
    assertValid(parsePipelineText(blocks[0], { source: 'docs/reference/pipeline.md' }), 'the example in pipeline.md');
  });

  test('the reference documents every field of the schema with its description', () => {
    const markdown = readFileSync(join(REFERENCE_DIR, 'pipeline.md'), 'utf8');
    const walk = (schema: Record<string, unknown>, path: string): void => {
      const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const [name, property] of Object.entries(properties)) {
        const fieldPath = path === '' ? name : `${path}.${name}`;
        assert.equal(typeof property.description, 'string', `${fieldPath} has no description in pipeline/schema.ts`);
        assert.ok(markdown.includes(`| \`${fieldPath}\` |`), `${fieldPath} is missing from pipeline.md`);
        if (property.type === 'object') walk(property, fieldPath);
        const items = property.items as Record<string, unknown> | undefined;
        if (property.type === 'array' && items?.type === 'object') walk(items, `${fieldPath}[]`);
      }
    };
    walk(pipelineJsonSchema(), '');
  });

  test('the JSON Schema is draft 2020-12 with an $id, and its patterns are valid ECMA-262 (unicode) regexes', () => {
    const schema = pipelineJsonSchema();
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.match(String(schema.$id), /^https:\/\//);
    assert.equal(typeof schema.title, 'string');
    const patterns = JSON.stringify(schema).match(/"pattern":"((?:[^"\\]|\\.)*)"/g) ?? [];
    assert.ok(patterns.length > 5);
    for (const entry of patterns) {
      const pattern = JSON.parse(`{${entry}}`).pattern as string;
      assert.doesNotThrow(() => new RegExp(pattern, 'u'), `pattern ${pattern}`);
    }
  });

  test('the JSON Schema makes fields with defaults optional and shows the defaults', () => {
    const schema = pipelineJsonSchema() as {
      properties: { spec: { properties: { stages: { items: Record<string, unknown> } } } };
    };
    const stage = schema.properties.spec.properties.stages.items as {
      required: string[];
      properties: Record<string, { default?: unknown }>;
    };
    assert.deepEqual([...stage.required].sort(), ['name', 'render']);
    assert.equal(stage.properties.promotion.default, 'manual');
    assert.deepEqual(stage.properties.after.default, []);
  });
});

describe('examples', () => {
  // The pipelines; the rest of an example is the content of its repository (manifests, charts).
  const examples = filesUnder(join(ROOT, 'examples'), ['pipeline.yaml']);

  test('there are examples to check', () => {
    assert.ok(examples.some((f) => f.endsWith(join('guestbook', 'pipeline.yaml'))));
  });

  for (const file of examples) {
    test(`${relative(ROOT, file)} is a valid pipeline`, async () => {
      assertValid(await loadPipelineFile(file), relative(ROOT, file));
    });
  }

  test('the guestbook example is the three-stage dev → staging → prod pipeline the docs describe', async () => {
    const result = await loadPipelineFile(join(ROOT, 'examples', 'guestbook', 'pipeline.yaml'));
    assertValid(result, 'examples/guestbook/pipeline.yaml');
    if (!result.ok) return;
    const stages = result.pipeline.spec.stages.map((s) => [
      s.name,
      s.promotion,
      s.after,
      s.render.to,
      s.approval ?? null,
    ]);
    assert.deepEqual(stages, [
      ['dev', 'auto', [], 'env/dev', null],
      ['staging', 'manual', ['dev'], 'env/staging', null],
      ['prod', 'manual', ['staging'], 'env/prod', { required: 1, approvers: ['alice', 'bob'] }],
    ]);
  });

  const docs = filesUnder(join(ROOT, 'docs'), ['.md']);
  for (const file of docs) {
    const blocks = pipelineBlocks(readFileSync(file, 'utf8'));
    if (blocks.length === 0) continue;
    test(`every pipeline in ${relative(ROOT, file)} is valid`, () => {
      blocks.forEach((block, i) => assertValid(parsePipelineText(block), `${relative(ROOT, file)} pipeline #${i + 1}`));
    });
  }
});

describe('command blocks of README.md and docs/', () => {
  const blocks = commandBlocks(ROOT);

  test('every shell block is run by test/e2e/walkthrough.test.ts, except the few marked not run, with a reason', () => {
    const where = (b: CommandBlock): string => `${b.where}${b.notRun ? ` (not run: ${b.notRun})` : ''}`;
    assert.equal(blocks.filter((b) => b.walkthrough).length, 1, 'README.md has one walkthrough block');
    const notRun = blocks.filter((b) => b.notRun !== undefined);
    // Marking a block "not run" is for what cannot run inside a test (npm start, npm test), not for what is broken.
    assert.deepEqual(notRun.map(where), [
      'README.md:9 (not run: the tests start this stack themselves, and npm test is the test suite)',
    ]);
    const run = blocks.filter((b) => !b.walkthrough && b.notRun === undefined).map((b) => b.where.split(':')[0]);
    for (const file of ['README.md', 'docs/api.md', 'docs/concepts.md']) assert.ok(run.includes(file), run.join(', '));
  });

  test('no block hides a refusal: curl is called with --fail-with-body, never -f or -sf', () => {
    for (const block of blocks) {
      for (const line of block.script.split('\n').filter((l) => /\bcurl\b/.test(l))) {
        assert.match(line, /--fail-with-body/, `${block.where}: ${line}`);
        assert.doesNotMatch(line, / -s?f\b/, `${block.where}: ${line}`);
      }
    }
  });
});
