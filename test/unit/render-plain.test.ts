// The plain render engine: which image references it sets, and that it changes nothing else, byte for byte.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createRenderEngines, type RenderInput } from '../../activities/render/engine';
import { normalizeRepository, parseImageReference, plainEngine } from '../../activities/render/plain';
import type { Artifact } from '../../pipeline/schema';

/** A render of `files` alone: a branch stage with no other settings, no directory outside `from`. */
function plainInput(input: Pick<RenderInput, 'files' | 'artifacts' | 'versions'>): RenderInput {
  return {
    pipeline: 'guestbook',
    from: 'apps/guestbook',
    source: { list: async () => 'missing' },
    render: { strategy: 'branch', engine: 'plain', from: 'apps/guestbook', to: 'env/dev' },
    ...input,
  };
}

const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;

const guestbook: Artifact = { name: 'guestbook', image: 'registry.example.com/team/guestbook' };
const ported: Artifact = { name: 'api', image: 'registry.local:5000/team/api' };

async function renderOne(
  path: string,
  text: string,
  versions: Record<string, string>,
  artifacts: Artifact[] = [guestbook, ported],
) {
  const [file] = await plainEngine.render(
    plainInput({ files: [{ path, content: Buffer.from(text) }], artifacts, versions }),
  );
  assert.ok(file);
  assert.equal(file.path, path);
  return file.content.toString('utf8');
}

async function assertInvalidManifest(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.nonRetryable, true);
    assert.equal(err.type, 'InvalidManifest');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('plain render engine: container images', () => {
  it('is the engine registered as "plain"', () => {
    assert.equal(createRenderEngines().plain, plainEngine);
    assert.equal(plainEngine.name, 'plain');
  });

  it('sets the tag of a Deployment container and changes no other byte', async () => {
    const source = [
      '# guestbook frontend',
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: guestbook   # keep me',
      '  labels: {app: guestbook, tier: "frontend"}',
      'spec:',
      '  replicas: 3',
      '  template:',
      '    spec:',
      '      containers:',
      '        - name: web',
      '          image: registry.example.com/team/guestbook:1.4.1 # pinned by ferry',
      '          ports:',
      '            - containerPort: 8080',
      '        - name: proxy',
      "          image: 'docker.io/library/envoy:v1.30'",
      '',
    ].join('\n');
    const out = await renderOne('deployment.yaml', source, { guestbook: '1.4.2' });
    assert.equal(out, source.replace('guestbook:1.4.1 #', 'guestbook:1.4.2 #'));
  });

  it('sets images in every document of a multi-document file and leaves the others as they are', async () => {
    const source = [
      '---',
      'apiVersion: v1',
      'kind: Service',
      'metadata: {name: guestbook}',
      'spec:',
      '  ports: [{port: 80, targetPort: 8080}]',
      '---',
      '# the worker',
      'apiVersion: apps/v1',
      'kind: StatefulSet',
      'spec:',
      '  template:',
      '    spec:',
      '      containers:',
      '      - image: "registry.example.com/team/guestbook:1.4.1"',
      '        name: worker',
      '...',
      '---',
      'apiVersion: apps/v1',
      'kind: DaemonSet',
      'spec:',
      '  template:',
      '    spec:',
      '      containers: [{name: agent, image: registry.example.com/team/guestbook:1.4.1}]',
      '',
    ].join('\n');
    const out = await renderOne('all.yml', source, { guestbook: '1.5.0' });
    assert.equal(out, source.replaceAll('guestbook:1.4.1', 'guestbook:1.5.0'));
  });

  it('sets the image of a CronJob (jobTemplate) and of a bare Pod', async () => {
    const source = [
      'apiVersion: batch/v1',
      'kind: CronJob',
      'spec:',
      '  schedule: "*/5 * * * *"',
      '  jobTemplate:',
      '    spec:',
      '      template:',
      '        spec:',
      '          containers:',
      '            - name: report',
      '              image: registry.example.com/team/guestbook:1.4.1',
      '          restartPolicy: OnFailure',
      '---',
      'apiVersion: v1',
      'kind: Pod',
      'spec:',
      '  containers:',
      '    - name: debug',
      '      image: registry.example.com/team/guestbook',
      '',
    ].join('\n');
    const out = await renderOne('cron.yaml', source, { guestbook: '2.0.0' });
    assert.equal(
      out,
      source
        .replace('guestbook:1.4.1', 'guestbook:2.0.0')
        .replace('image: registry.example.com/team/guestbook\n', 'image: registry.example.com/team/guestbook:2.0.0\n'),
    );
  });

  it('sets initContainers and ephemeralContainers images, not other keys that happen to be called image', async () => {
    const source = [
      'kind: Deployment',
      'metadata:',
      '  annotations:',
      '    image: registry.example.com/team/guestbook:0.0.1',
      'spec:',
      '  template:',
      '    spec:',
      '      initContainers:',
      '        - name: migrate',
      '          image: registry.example.com/team/guestbook:1.4.1',
      '      ephemeralContainers:',
      '        - name: shell',
      '          image: registry.example.com/team/guestbook:1.4.1',
      '      containers:',
      '        - name: web',
      '          image: registry.example.com/team/guestbook-sidecar:1.4.1',
      '',
    ].join('\n');
    const out = await renderOne('deploy.yaml', source, { guestbook: '1.4.2' });
    const expected = source.split('\n');
    expected[9] = '          image: registry.example.com/team/guestbook:1.4.2';
    expected[12] = '          image: registry.example.com/team/guestbook:1.4.2';
    assert.equal(out, expected.join('\n'));
  });

  it('tells a registry port from a tag', async () => {
    const source = [
      'spec:',
      '  containers:',
      '    - image: registry.local:5000/team/api:1.0',
      '    - image: registry.local:5000/team/api',
      '    - image: registry.local:5000/team/api-gateway:1.0',
      '    - image: registry.local:5001/team/api:1.0',
      '    - image: registry.local/team/api:1.0',
      '',
    ].join('\n');
    const out = await renderOne('ports.yaml', source, { api: '1.1' });
    const expected = source
      .replace('    - image: registry.local:5000/team/api:1.0\n', '    - image: registry.local:5000/team/api:1.1\n')
      .replace('    - image: registry.local:5000/team/api\n', '    - image: registry.local:5000/team/api:1.1\n');
    assert.equal(out, expected);
    assert.deepEqual(parseImageReference('registry.local:5000/team/api'), {
      repository: 'registry.local:5000/team/api',
    });
    assert.deepEqual(parseImageReference(`registry.local:5000/team/api:1.0@${DIGEST_A}`), {
      repository: 'registry.local:5000/team/api',
      tag: '1.0',
      digest: DIGEST_A,
    });
  });

  it('writes a digest as repo@digest, replacing a tag, a digest, or both', async () => {
    const source = [
      'spec:',
      '  containers:',
      '    - image: registry.example.com/team/guestbook:1.4.1',
      `    - image: registry.example.com/team/guestbook@${DIGEST_A}`,
      `    - image: registry.example.com/team/guestbook:1.4.1@${DIGEST_A}`,
      '',
    ].join('\n');
    const out = await renderOne('digest.yaml', source, { guestbook: DIGEST_B });
    assert.equal(out.match(new RegExp(`registry\\.example\\.com/team/guestbook@${DIGEST_B}\n`, 'g'))?.length, 3);
    assert.doesNotMatch(out, /1\.4\.1|aaaa/);

    const back = await renderOne('digest.yaml', out, { guestbook: '1.4.3' });
    assert.equal(
      back,
      source
        .replaceAll(`:1.4.1@${DIGEST_A}`, ':1.4.3')
        .replaceAll(`@${DIGEST_A}`, ':1.4.3')
        .replaceAll(':1.4.1', ':1.4.3'),
    );
  });

  it("matches Docker Hub images however they are spelled, keeping the manifest's spelling", async () => {
    const nginx: Artifact = { name: 'nginx', image: 'docker.io/library/nginx' };
    const source =
      'spec:\n  containers:\n    - image: nginx:1.25\n    - image: index.docker.io/library/nginx:1.25\n    - image: nginxinc/nginx:1.25\n';
    const out = await renderOne('hub.yaml', source, { nginx: '1.27' }, [nginx]);
    assert.equal(
      out,
      'spec:\n  containers:\n    - image: nginx:1.27\n    - image: index.docker.io/library/nginx:1.27\n    - image: nginxinc/nginx:1.25\n',
    );
    assert.equal(normalizeRepository('nginx'), 'docker.io/library/nginx');
    assert.equal(normalizeRepository('localhost:5000/app'), 'localhost:5000/app');
  });

  it('keeps the quoting style, and quotes a plain value that YAML would read as a number', async () => {
    const source = [
      'spec:',
      '  containers:',
      '    - image: "registry.example.com/team/guestbook:1"',
      "    - image: 'registry.example.com/team/guestbook:1'",
      '    - image: >-',
      '        registry.example.com/team/guestbook:1',
      '',
    ].join('\n');
    const out = await renderOne('styles.yaml', source, { guestbook: '1.10' });
    assert.equal(out, source.replaceAll('guestbook:1', 'guestbook:1.10'));
  });

  it('keeps CRLF line endings and a byte-order mark', async () => {
    const source =
      '\ufeffkind: Pod\r\nspec:\r\n  containers:\r\n    - image: registry.example.com/team/guestbook:1.0 # x\r\n';
    const [file] = await plainEngine.render(
      plainInput({
        files: [{ path: 'pod.yaml', content: Buffer.from(source, 'utf8') }],
        artifacts: [guestbook],
        versions: { guestbook: '1.1' },
      }),
    );
    assert.deepEqual(file?.content, Buffer.from(source.replace(':1.0 #', ':1.1 #'), 'utf8'));
  });
});

describe('plain render engine: kustomization images', () => {
  it('sets newTag of the entry whose name matches, keeping comments and order', async () => {
    const source = [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'resources:',
      '  - ../../base',
      'images:',
      '  # the app',
      '  - name: registry.example.com/team/guestbook',
      '    newTag: "1.4.1"   # set by ferry',
      '  - name: redis',
      '    newTag: "7"',
      '',
    ].join('\n');
    const out = await renderOne('kustomization.yaml', source, { guestbook: '1.4.2' });
    assert.equal(out, source.replace('newTag: "1.4.1"', 'newTag: "1.4.2"'));
  });

  it('matches on newName as well, and adds newTag when the entry has none', async () => {
    const source = [
      'images:',
      '- name: guestbook',
      '  newName: registry.example.com/team/guestbook',
      '- name: other',
      '',
    ].join('\n');
    const out = await renderOne('kustomization.yml', source, { guestbook: 'v2' });
    assert.equal(
      out,
      [
        'images:',
        '- name: guestbook',
        '  newName: registry.example.com/team/guestbook',
        '  newTag: v2',
        '- name: other',
        '',
      ].join('\n'),
    );
  });

  it('replaces newTag by digest for a digest, and digest by newTag for a tag, on the same line', async () => {
    const source = [
      'images:',
      '  - name: registry.example.com/team/guestbook',
      '    newTag: 1.4.1 # pinned',
      '  - name: registry.local:5000/team/api',
      `    digest: ${DIGEST_A}`,
      '    newTag: old',
      '',
    ].join('\n');
    const out = await renderOne('Kustomization', source, { guestbook: DIGEST_B, api: '1.10' });
    assert.equal(
      out,
      [
        'images:',
        '  - name: registry.example.com/team/guestbook',
        `    digest: ${DIGEST_B} # pinned`,
        '  - name: registry.local:5000/team/api',
        '    newTag: "1.10"',
        '',
      ].join('\n'),
    );
  });

  it('edits flow-style entries and entries with an empty value', async () => {
    const source = [
      'images:',
      `  - {name: registry.example.com/team/guestbook, digest: '${DIGEST_A}'}`,
      '  - name: registry.local:5000/team/api',
      '    newTag:   # filled in by ferry',
      `    digest: ${DIGEST_A}`,
      '  - name: last',
      '',
    ].join('\n');
    const out = await renderOne('kustomization.yaml', source, { guestbook: '1.4.2', api: '3.0.0' });
    assert.equal(
      out,
      [
        'images:',
        "  - {name: registry.example.com/team/guestbook, newTag: '1.4.2'}",
        '  - name: registry.local:5000/team/api',
        '    newTag: 3.0.0   # filled in by ferry',
        '  - name: last',
        '',
      ].join('\n'),
    );
  });

  it('leaves images: of files that are not kustomizations alone', async () => {
    const source = 'images:\n  - name: registry.example.com/team/guestbook\n    newTag: "1.0"\n';
    assert.equal(await renderOne('values.yaml', source, { guestbook: '2.0' }), source);
  });
});

describe('plain render engine: what it leaves alone', () => {
  it('returns the very same bytes for files that need no change, YAML or not', async () => {
    const files = [
      {
        path: 'other.yaml',
        content: Buffer.from('spec:\n  containers:\n    - image:   nginx:1.25    # odd spacing\n'),
      },
      {
        path: 'current.yaml',
        content: Buffer.from("spec:\n  containers:\n    - image: 'registry.example.com/team/guestbook:1.4.2'\n"),
      },
      { path: 'README.md', content: Buffer.from('image: registry.example.com/team/guestbook:1.0\n') },
      { path: 'chart/templates/x.tpl', content: Buffer.from('{{ .Values.image }}: [') },
      { path: 'logo.png', content: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0xfe]) },
    ];
    const out = await plainEngine.render(
      plainInput({ files, artifacts: [guestbook], versions: { guestbook: '1.4.2' } }),
    );
    assert.deepEqual(
      out.map((f) => f.path),
      files.map((f) => f.path),
    );
    out.forEach((file, i) =>
      assert.equal(file.content, files[i]!.content, `${file.path} must be passed through untouched`),
    );
  });

  it('changes nothing for artifacts the freight has no version for', async () => {
    const source = 'spec:\n  containers:\n    - image: registry.example.com/team/guestbook:1.0\n';
    assert.equal(await renderOne('a.yaml', source, { unrelated: '9.9' }), source);
  });
});

describe('plain render engine: errors', () => {
  it('names the file, line and column of invalid YAML, as a non-retryable failure', async () => {
    const source = 'kind: Deployment\nspec:\n  template: {\n  containers: ]\n';
    await assertInvalidManifest(
      renderOne('overlays/dev/bad.yaml', source, { guestbook: '1.0' }),
      /^apps\/guestbook\/overlays\/dev\/bad\.yaml:4:\d+: invalid YAML: /,
    );
    await assertInvalidManifest(
      renderOne('dup.yaml', 'a: 1\nb: 2\na: 3\n', { guestbook: '1.0' }),
      /^apps\/guestbook\/dup\.yaml:3:1: invalid YAML: Map keys must be unique/,
    );
    await assertInvalidManifest(
      plainEngine.render(
        plainInput({
          files: [{ path: 'latin1.yaml', content: Buffer.from([0x61, 0x3a, 0x20, 0xe9, 0x0a]) }],
          artifacts: [guestbook],
          versions: { guestbook: '1' },
        }),
      ),
      /^apps\/guestbook\/latin1\.yaml: invalid YAML: the file is not UTF-8/,
    );
  });

  it('refuses a freight version that is neither a tag nor a digest', async () => {
    await assert.rejects(renderOne('a.yaml', 'a: 1\n', { guestbook: '1.0 ; rm -rf' }), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, 'InvalidVersion');
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /artifact "guestbook"/);
      return true;
    });
  });
});
