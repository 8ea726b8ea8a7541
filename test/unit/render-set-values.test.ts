// `render.set`: a value from the freight written at a key path of a YAML file, and not one other byte changed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { SourceFile } from '../../activities/render/engine';
import { plainEngine } from '../../activities/render/plain';
import { applySetValues, parseKeyPath, setValueFor } from '../../activities/render/set-values';
import type { Artifact, SetValueSpec } from '../../pipeline/schema';

const DIGEST = `sha256:${'c'.repeat(64)}`;
const COMMIT = 'f'.repeat(40);
const ARTIFACTS: Artifact[] = [
  { name: 'guestbook', image: 'registry.example.com/team/guestbook' },
  { name: 'api', image: 'registry.local:5000/team/api' },
  { name: 'config', git: { url: 'https://git.example.com/org/config.git', branch: 'main' } },
];
const VERSIONS = { guestbook: '1.4.2', api: DIGEST, config: COMMIT };

const entry = (key: string, rest: Partial<SetValueSpec> = {}): SetValueSpec => ({
  key,
  artifact: 'guestbook',
  value: 'version',
  file: 'values.yaml',
  ...rest,
});

function file(path: string, text: string): SourceFile {
  return { path, content: Buffer.from(text) };
}

/** Applies the entries to one file and returns its text. */
function setIn(text: string, set: SetValueSpec[], path = 'values.yaml'): string {
  const [out] = applySetValues([file(path, text)], set, ARTIFACTS, VERSIONS, { base: 'charts/guestbook' });
  return out!.content.toString('utf8');
}

function assertFailure(fn: () => unknown, type: string, patterns: RegExp[]): ApplicationFailure {
  let failure: ApplicationFailure | undefined;
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, true, err.message);
    for (const pattern of patterns) assert.match(err.message, pattern);
    failure = err;
    return true;
  });
  return failure!;
}

const VALUES = [
  '# Default values for guestbook.',
  'replicaCount: 2',
  '',
  'image:',
  '  repository: registry.example.com/team/guestbook   # the app',
  '  # overridden by Ferry on every promotion',
  '  tag: "1.0.0"',
  "  pullPolicy: 'IfNotPresent'",
  '',
  'sidecar: {image: busybox, tag: 1.36}',
  'args:',
  '  - --port=8080',
  '  - --color=blue',
  '',
].join('\n');

describe('render.set: writing a value at a key path', () => {
  it('replaces the value at image.tag, keeping its quotes, and changes no other byte', () => {
    assert.equal(setIn(VALUES, [entry('image.tag')]), VALUES.replace('tag: "1.0.0"', 'tag: "1.4.2"'));
  });

  it('edits flow maps and list items, keeping their layout', () => {
    const out = setIn(VALUES, [
      entry('sidecar.tag', { value: 'tag' }),
      entry('args[1]', { value: 'reference', artifact: 'api' }),
    ]);
    assert.equal(
      out,
      VALUES.replace('tag: 1.36}', 'tag: 1.4.2}').replace('--color=blue', `registry.local:5000/team/api@${DIGEST}`),
    );
  });

  it('walks nested lists: spec.template.spec.containers[1].image', () => {
    const deployment = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'spec:',
      '  template:',
      '    spec:',
      '      containers:',
      '        - name: web',
      '          image: registry.example.com/team/guestbook:1.0.0',
      '        - name: migrate',
      '          image: registry.example.com/team/guestbook:1.0.0 # same image, other job',
      '',
    ].join('\n');
    const out = setIn(deployment, [entry('spec.template.spec.containers[1].image', { value: 'reference' })]);
    const lines = deployment.split('\n');
    lines[9] = '          image: registry.example.com/team/guestbook:1.4.2 # same image, other job';
    assert.equal(out, lines.join('\n'));
  });

  it('fills an empty or null value, and quotes a value YAML would read as a number', () => {
    assert.equal(
      setIn('image:\n  tag:\n  pullPolicy: Always\n', [entry('image.tag')]),
      'image:\n  tag: 1.4.2\n  pullPolicy: Always\n',
    );
    assert.equal(setIn('image:\n  tag: ~ # none\n', [entry('image.tag')]), 'image:\n  tag: 1.4.2 # none\n');
    const numeric = applySetValues(
      [file('values.yaml', 'image:\n  tag: 1.0\n')],
      [entry('image.tag')],
      ARTIFACTS,
      { ...VERSIONS, guestbook: '1.10' },
      { base: '' },
    );
    assert.equal(numeric[0]!.content.toString('utf8'), 'image:\n  tag: "1.10"\n');
  });

  it('keeps CRLF line endings', () => {
    const crlf = 'image:\r\n  repository: x\r\n  tag: 1.0.0\r\n';
    assert.equal(setIn(crlf, [entry('image.tag')]), crlf.replace('1.0.0', '1.4.2'));
  });

  it('sets the path in every document of the file that has it, and leaves the others alone', () => {
    const multi = ['image: {tag: a}', '---', 'other: true', '---', '# prod', 'image:', '  tag: b', ''].join('\n');
    assert.equal(
      setIn(multi, [entry('image.tag')]),
      multi.replace('tag: a', 'tag: 1.4.2').replace('tag: b', 'tag: 1.4.2'),
    );
  });

  it('applies several entries to one file in order; the last one for a key wins', () => {
    const out = setIn(VALUES, [
      entry('image.tag', { value: 'tag' }),
      entry('image.repository', { value: 'repository', artifact: 'api' }),
      entry('image.tag', { value: 'digest', artifact: 'api' }),
    ]);
    assert.equal(
      out,
      VALUES.replace('guestbook   # the app', 'guestbook   # the app')
        .replace('registry.example.com/team/guestbook   #', 'registry.local:5000/team/api   #')
        .replace('tag: "1.0.0"', `tag: "${DIGEST}"`),
    );
  });

  it('returns untouched files, and files whose value is already right, as the very same Buffers', () => {
    const files = [file('values.yaml', 'image:\n  tag: 1.4.2\n'), file('README.md', '# chart\n')];
    const out = applySetValues(files, [entry('image.tag')], ARTIFACTS, VERSIONS, { base: 'charts/guestbook' });
    assert.equal(out.length, 2);
    assert.equal(out[0], files[0]);
    assert.equal(out[1], files[1]);
    const edited = applySetValues([file('values.yaml', VALUES), files[1]!], [entry('image.tag')], ARTIFACTS, VERSIONS, {
      base: '',
    });
    assert.equal(edited[1], files[1]);
    assert.notEqual(edited[0]!.content.toString('utf8'), VALUES);
  });

  it('reads file paths relative to the base, with or without ./', () => {
    const files = [file('env/dev.yaml', 'image:\n  tag: x\n')];
    const out = applySetValues(files, [entry('image.tag', { file: './env/dev.yaml' })], ARTIFACTS, VERSIONS, {
      base: 'charts/guestbook',
    });
    assert.equal(out[0]!.content.toString('utf8'), 'image:\n  tag: 1.4.2\n');
  });
});

describe('render.set: what of the version is written', () => {
  const value = (artifact: string, kind: SetValueSpec['value']) =>
    setValueFor({ key: 'k', artifact, value: kind }, 0, ARTIFACTS, VERSIONS);

  it('gives version, tag, digest, reference and repository as the schema describes', () => {
    assert.equal(value('guestbook', 'version'), '1.4.2');
    assert.equal(value('guestbook', 'tag'), '1.4.2');
    assert.equal(value('guestbook', 'reference'), 'registry.example.com/team/guestbook:1.4.2');
    assert.equal(value('guestbook', 'repository'), 'registry.example.com/team/guestbook');
    assert.equal(value('api', 'version'), DIGEST);
    assert.equal(value('api', 'digest'), DIGEST);
    assert.equal(value('api', 'reference'), `registry.local:5000/team/api@${DIGEST}`);
    assert.equal(value('config', 'version'), COMMIT);
  });

  it('refuses a tag of digest freight, a digest of tag freight and an image part of a git artifact', () => {
    const at = (fn: () => unknown, patterns: RegExp[]) => assertFailure(fn, 'InvalidVersion', patterns);
    at(
      () => setIn(VALUES, [entry('image.tag'), entry('image.tag', { artifact: 'api', value: 'tag' })]),
      [/render\.set\[1\]/, /artifact "api"/, /is a digest/, /value digest or reference/],
    );
    at(() => value('guestbook', 'digest'), [/render\.set\[0\]/, /"guestbook" is a tag \(1\.4\.2\), not a digest/]);
    at(() => value('config', 'tag'), [/"config" is a git artifact/, /only value "version"/]);
    at(() => value('nope', 'version'), [/no artifact "nope"/, /guestbook, api, config/]);
    at(
      () => setValueFor({ key: 'k', artifact: 'guestbook', value: 'tag' }, 3, ARTIFACTS, {}),
      [/render\.set\[3\]/, /the freight has no version of artifact "guestbook"/],
    );
  });
});

describe('render.set: files and keys that are not there', () => {
  it('names file, key and line of a key path that does not exist', () => {
    const failure = assertFailure(() => setIn(VALUES, [entry('image.digest')]), 'InvalidManifest', [
      /^charts\/guestbook\/values\.yaml:5: render\.set\[0\]: key image\.digest: not found: "image" has no key "digest"/,
    ]);
    assert.deepEqual(failure.details?.[0], {
      file: 'charts/guestbook/values.yaml',
      key: 'image.digest',
      entry: 0,
      line: 5,
    });
    assertFailure(() => setIn(VALUES, [entry('resources.limits')]), 'InvalidManifest', [
      /values\.yaml:2: .*key resources\.limits: not found: the document has no key "resources"/,
    ]);
    assertFailure(() => setIn(VALUES, [entry('args[5]')]), 'InvalidManifest', [/:12: .*"args" has 2 items/]);
    assertFailure(() => setIn(VALUES, [entry('image.tag[0]')]), 'InvalidManifest', [/"image\.tag" is not a list/]);
    assertFailure(() => setIn(VALUES, [entry('image')]), 'InvalidManifest', [
      /values\.yaml:5: .*key image: the value is a map, not a single value/,
    ]);
  });

  it('refuses to edit through an alias, which would change every place that uses the anchor', () => {
    const anchored = 'defaults: &d\n  tag: 1.0\nimage: *d\n';
    assertFailure(() => setIn(anchored, [entry('image.tag')]), 'InvalidManifest', [/"image" is an alias/]);
  });

  it('names a file that does not exist, and where files are looked up', () => {
    assertFailure(() => setIn(VALUES, [entry('image.tag', { file: 'values-prod.yaml' })]), 'InvalidManifest', [
      /^charts\/guestbook\/values-prod\.yaml: render\.set\[0\] \(key image\.tag\): no such file; render\.set\[\]\.file is relative to charts\/guestbook/,
    ]);
  });

  it('names file, line and column of a file that is not YAML, or holds no map', () => {
    assertFailure(() => setIn('image:\n  tag: [1.0\n', [entry('image.tag')]), 'InvalidManifest', [
      /^charts\/guestbook\/values\.yaml:\d+:\d+: invalid YAML: /,
    ]);
    assertFailure(
      () => setIn('color=blue\nsize=2\n', [entry('color', { file: 'app.properties' })], 'app.properties'),
      'InvalidManifest',
      [/app\.properties:1: .*key color: not found: the document is not a map/],
    );
  });
});

describe('render.set: key paths', () => {
  it('splits names and list indexes', () => {
    assert.deepEqual(parseKeyPath('spec.containers[0].image'), [
      { key: 'spec', indexes: [] },
      { key: 'containers', indexes: [0] },
      { key: 'image', indexes: [] },
    ]);
    assert.deepEqual(parseKeyPath('matrix[1][2]'), [{ key: 'matrix', indexes: [1, 2] }]);
  });
});

describe('plain engine with render.set', () => {
  it('sets the values after the image references, in files relative to render.from', async () => {
    const deployment =
      'kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: registry.example.com/team/guestbook:1.0.0\n';
    const config = '# app config\nrelease:\n  version: "0.0.0"\n';
    const [outDeployment, outConfig] = await plainEngine.render({
      pipeline: 'guestbook',
      from: 'apps/guestbook',
      files: [file('deployment.yaml', deployment), file('config/app.yaml', config)],
      source: { list: async () => 'missing' },
      render: {
        strategy: 'branch',
        engine: 'plain',
        from: 'apps/guestbook',
        to: 'env/dev',
        set: [{ key: 'release.version', artifact: 'guestbook', value: 'tag', file: 'config/app.yaml' }],
      },
      artifacts: ARTIFACTS,
      versions: VERSIONS,
    });
    assert.equal(outDeployment!.content.toString('utf8'), deployment.replace('1.0.0', '1.4.2'));
    assert.equal(outConfig!.content.toString('utf8'), config.replace('"0.0.0"', '"1.4.2"'));
  });
});
