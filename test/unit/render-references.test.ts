// What the kustomize and helm engines read of the repository, without the binaries: the paths a kustomization
// refers to, the image arguments for `kustomize edit set image`, and the charts a chart has vendored.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { SourceFile, SourceReader } from '../../activities/render/engine';
import { archivedChartName, chartDependencies, vendoredCharts } from '../../activities/render/helm';
import {
  copyKustomization,
  isRemoteReference,
  kustomizationReferences,
  setImageArguments,
} from '../../activities/render/kustomize';
import { resolveInRepository } from '../../activities/render/paths';
import { SourceTree } from '../../activities/render/source-tree';
import { toolMessage } from '../../activities/render/tool-process';
import type { Artifact } from '../../pipeline/schema';

describe('kustomize references', () => {
  it('lists every local path a kustomization refers to, by field, and no inline content', () => {
    const refs = kustomizationReferences({
      resources: ['../../base', 'extra.yaml'],
      bases: ['../legacy'],
      components: ['../../components/monitoring'],
      patches: [{ path: 'replicas.yaml' }, { patch: '- op: add\n  path: /x\n  value: 1\n' }],
      patchesStrategicMerge: ['memory.yaml', 'apiVersion: v1\nkind: ConfigMap\n'],
      patchesJson6902: [{ target: { kind: 'Deployment' }, path: 'json-patch.yaml' }],
      configMapGenerator: [
        { name: 'a', files: ['settings.yaml=config/settings.yaml', 'plain.txt'], envs: ['dev.env'] },
      ],
      secretGenerator: [{ name: 'b', env: 'secret.env' }],
      crds: ['crds/widget.json'],
      openapi: { path: 'schema.json' },
      replacements: [{ path: 'replacement.yaml' }, { source: { kind: 'X' } }],
      configurations: ['name-reference.yaml'],
      transformers: ['labels.yaml', 'apiVersion: builtin\nkind: LabelTransformer\n'],
      generators: ['../generators'],
      validators: ['validator.yaml'],
      helmCharts: [{ name: 'redis', valuesFile: 'redis-values.yaml', additionalValuesFiles: ['more.yaml'] }],
      helmGlobals: { chartHome: '../charts' },
    });
    assert.deepEqual(refs.paths, [
      { field: 'resources', path: '../../base' },
      { field: 'resources', path: 'extra.yaml' },
      { field: 'bases', path: '../legacy' },
      { field: 'components', path: '../../components/monitoring' },
      { field: 'transformers', path: 'labels.yaml' },
      { field: 'generators', path: '../generators' },
      { field: 'validators', path: 'validator.yaml' },
      { field: 'helmGlobals.chartHome', path: '../charts' },
    ]);
    assert.deepEqual(refs.files, [
      { field: 'patchesStrategicMerge', path: 'memory.yaml' },
      { field: 'crds', path: 'crds/widget.json' },
      { field: 'configurations', path: 'name-reference.yaml' },
      { field: 'patches[0].path', path: 'replicas.yaml' },
      { field: 'patchesJson6902[0].path', path: 'json-patch.yaml' },
      { field: 'replacements[0].path', path: 'replacement.yaml' },
      { field: 'configMapGenerator[0].files', path: 'config/settings.yaml' },
      { field: 'configMapGenerator[0].files', path: 'plain.txt' },
      { field: 'configMapGenerator[0].envs', path: 'dev.env' },
      { field: 'secretGenerator[0].env', path: 'secret.env' },
      { field: 'openapi.path', path: 'schema.json' },
      { field: 'helmCharts[0].valuesFile', path: 'redis-values.yaml' },
      { field: 'helmCharts[0].additionalValuesFiles', path: 'more.yaml' },
    ]);
  });

  it('takes helm charts from charts/ by default, and reads nothing of a kustomization that is not a map', () => {
    assert.deepEqual(kustomizationReferences({ helmCharts: [{ name: 'x' }] }).paths, [
      { field: 'helmGlobals.chartHome', path: 'charts' },
    ]);
    assert.deepEqual(kustomizationReferences('just text'), { paths: [], files: [] });
    assert.deepEqual(kustomizationReferences({ resources: 'not-a-list', patches: [7, null] }), {
      paths: [],
      files: [],
    });
  });

  it('tells remote references from local paths', () => {
    for (const remote of [
      'https://github.com/kubernetes-sigs/kustomize//examples/multibases?ref=v1.0.6',
      'http://example.com/deploy.yaml',
      'ssh://git@github.com/org/repo.git',
      'git@github.com:org/repo.git//base',
      'git::https://example.com/repo.git',
      'github.com/org/repo/base?ref=main',
      'gitlab.example.com/org/repo/base',
    ]) {
      assert.equal(isRemoteReference(remote), true, remote);
    }
    for (const local of ['../../base', 'base', 'config.d/app', 'overlays/v1.2/dev', './deployment.yaml']) {
      assert.equal(isRemoteReference(local), false, local);
    }
  });

  it('resolves references inside the repository only', () => {
    assert.equal(resolveInRepository('apps/guestbook/overlays/dev', '../../base'), 'apps/guestbook/base');
    assert.equal(resolveInRepository('apps/dev', './patch.yaml'), 'apps/dev/patch.yaml');
    assert.equal(resolveInRepository('apps', '..'), '');
    assert.equal(resolveInRepository('', 'base/'), 'base');
    assert.equal(resolveInRepository('apps', '../..'), undefined);
    assert.equal(resolveInRepository('apps/dev', '../../../etc/passwd'), undefined);
    assert.equal(resolveInRepository('apps/dev', '/etc/passwd'), undefined);
  });
});

describe('kustomize edit set image arguments', () => {
  const DIGEST = `sha256:${'d'.repeat(64)}`;
  const artifacts: Artifact[] = [
    { name: 'guestbook', image: 'registry.example.com/team/guestbook' },
    { name: 'nginx', image: 'docker.io/library/nginx' },
    { name: 'config', git: { url: 'https://git.example.com/org/config.git', branch: 'main' } },
  ];

  it('sets every image artifact under its repository, keeping newName with *', () => {
    assert.deepEqual(
      setImageArguments(undefined, artifacts, { guestbook: '1.4.2', nginx: DIGEST, config: 'f'.repeat(40) }),
      ['registry.example.com/team/guestbook=*:1.4.2', `docker.io/library/nginx=*@${DIGEST}`],
    );
  });

  it('also sets entries that map another name onto an artifact, and entries that spell it differently', () => {
    const kustomization = {
      images: [
        { name: 'web', newName: 'registry.example.com/team/guestbook', newTag: '0.1' },
        { name: 'nginx', newTag: '1.25' },
        { name: 'registry.example.com/team/guestbook', newName: 'mirror.example.com/guestbook' },
        { name: 'unrelated', newName: 'registry.example.com/team/other' },
        'not-an-entry',
      ],
    };
    assert.deepEqual(setImageArguments(kustomization, artifacts, { guestbook: '2.0.0', nginx: '1.27' }), [
      'registry.example.com/team/guestbook=*:2.0.0',
      'web=*:2.0.0',
      'docker.io/library/nginx=*:1.27',
      'nginx=*:1.27',
    ]);
  });

  it('sets nothing for artifacts the freight has no version of', () => {
    assert.deepEqual(setImageArguments(undefined, artifacts, {}), []);
  });
});

/** A SourceReader over in-memory repository files that records which directories were listed. */
function memoryReader(files: Record<string, string>): SourceReader & { listed: string[] } {
  const listed: string[] = [];
  return {
    listed,
    async list(dir) {
      listed.push(dir);
      if (files[dir] !== undefined) return 'not-a-directory';
      const prefix = dir === '' ? '' : `${dir}/`;
      const under: SourceFile[] = Object.entries(files)
        .filter(([path]) => path.startsWith(prefix))
        .map(([path, content]) => ({ path: path.slice(prefix.length), content: Buffer.from(content) }));
      return under.length > 0 ? under : 'missing';
    },
  };
}

function filesUnder(root: string): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [relative(root, join(dir, e.name))],
    );
  return walk(root).sort();
}

describe('copying a kustomization and what it refers to', () => {
  const REPO = {
    'apps/gb/base/kustomization.yaml': 'resources: [deployment.yaml]\n',
    'apps/gb/base/deployment.yaml': 'kind: Deployment\n',
    'apps/gb/components/mon/kustomization.yaml': 'kind: Component\npatches: [{path: scrape.yaml}]\n',
    'apps/gb/components/mon/scrape.yaml': 'kind: Deployment\n',
    'apps/gb/overlays/dev/kustomization.yaml':
      'resources: [../../base, ../../shared/ns.yaml, missing.yaml]\ncomponents: [../../components/mon]\n' +
      'configMapGenerator: [{name: c, files: [../../config/app.properties]}]\n',
    'apps/gb/overlays/dev/patch.yaml': 'kind: Deployment\n',
    'apps/gb/shared/ns.yaml': 'kind: Namespace\n',
    'apps/gb/config/app.properties': 'color=blue\n',
    'apps/unrelated/kustomization.yaml': 'resources: [x.yaml]\n',
    'apps/unrelated/x.yaml': 'kind: ConfigMap\n',
  };

  it('copies from, bases, components and referenced files with the repository layout, and reads nothing else', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-tree-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const reader = memoryReader(REPO);
    const tree = new SourceTree(root, reader);
    const from = await reader.list('apps/gb/overlays/dev');
    assert.ok(typeof from !== 'string');
    reader.listed.length = 0;
    await tree.addDirectory('apps/gb/overlays/dev', from);
    await copyKustomization(tree, 'apps/gb/overlays/dev');
    assert.deepEqual(filesUnder(root), [
      'apps/gb/base/deployment.yaml',
      'apps/gb/base/kustomization.yaml',
      'apps/gb/components/mon/kustomization.yaml',
      'apps/gb/components/mon/scrape.yaml',
      'apps/gb/config/app.properties',
      'apps/gb/overlays/dev/kustomization.yaml',
      'apps/gb/overlays/dev/patch.yaml',
      'apps/gb/shared/ns.yaml',
    ]);
    assert.equal(readFileSync(join(root, 'apps/gb/config/app.properties'), 'utf8'), 'color=blue\n');
    // Each directory is listed once; a missing local path is left for kustomize to report.
    assert.deepEqual(reader.listed, [
      'apps/gb/base',
      'apps/gb/shared/ns.yaml',
      'apps/gb/shared',
      'apps/gb/components/mon',
      'apps/gb/config',
    ]);
  });

  it('follows a cycle of kustomizations once', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-tree-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const reader = memoryReader({
      'a/kustomization.yaml': 'resources: [../b]\n',
      'b/kustomization.yaml': 'resources: [../a]\n',
    });
    await copyKustomization(new SourceTree(root, reader), 'a');
    assert.deepEqual(filesUnder(root), ['a/kustomization.yaml', 'b/kustomization.yaml']);
  });

  it('refuses a path outside the repository and a remote reference, naming the kustomization and the field', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-tree-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const refused = async (kustomization: string, pattern: RegExp) => {
      const tree = new SourceTree(root, memoryReader({ 'apps/dev/kustomization.yaml': kustomization }));
      await assert.rejects(copyKustomization(tree, 'apps/dev'), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, 'RenderFailed');
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, pattern);
        return true;
      });
    };
    await refused(
      'resources: [../../../outside]\n',
      /^apps\/dev\/kustomization\.yaml: resources entry "\.\.\/\.\.\/\.\.\/outside" points outside/,
    );
    await refused('patches: [{path: /etc/shadow}]\n', /patches\[0\]\.path entry "\/etc\/shadow" points outside/);
    await refused(
      'components: [github.com/org/repo/component]\n',
      /components entry "github\.com\/org\/repo\/component" is a remote reference/,
    );
  });
});

describe('helm charts: dependencies and what is vendored', () => {
  it('reads the dependencies of a Chart.yaml, or says it cannot', () => {
    assert.deepEqual(
      chartDependencies(
        Buffer.from(
          'name: app\ndependencies:\n  - name: redis\n    repository: https://charts.example.com\n  - name: common\n    repository: file://../common\n  - name: local\n',
        ),
      ),
      [
        { name: 'redis', repository: 'https://charts.example.com' },
        { name: 'common', repository: 'file://../common' },
        { name: 'local', repository: '' },
      ],
    );
    assert.deepEqual(chartDependencies(Buffer.from('name: app\n')), []);
    assert.equal(chartDependencies(Buffer.from('name: [unclosed\n')), undefined);
  });

  it('finds vendored charts by the name in their Chart.yaml, archives and directories alike', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-charts-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // A chart archive as `helm package` makes it: <name>/Chart.yaml inside a gzipped tar.
    const write = (path: string, content: string) => {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), content);
    };
    write('src/redis/Chart.yaml', 'apiVersion: v2\nname: redis\nversion: 17.0.0\n');
    write('src/redis/templates/a.yaml', 'kind: Service\n');
    execFileSync('tar', ['-czf', join(dir, 'redis-17.0.0.tgz'), '-C', join(dir, 'src'), 'redis']);
    const archive = readFileSync(join(dir, 'redis-17.0.0.tgz'));
    assert.equal(archivedChartName(archive), 'redis');
    assert.equal(archivedChartName(Buffer.from('not gzip')), undefined);

    const files: SourceFile[] = [
      { path: 'Chart.yaml', content: Buffer.from('name: app\n') },
      { path: 'charts/cache-17.0.0.tgz', content: archive },
      { path: 'charts/common/Chart.yaml', content: Buffer.from('name: common\nversion: 0.2.0\n') },
      { path: 'charts/common/templates/x.yaml', content: Buffer.from('kind: ConfigMap\n') },
      { path: 'charts/_skipped/Chart.yaml', content: Buffer.from('name: skipped\n') },
      { path: 'charts/README.md', content: Buffer.from('# vendored\n') },
      { path: 'templates/charts/Chart.yaml', content: Buffer.from('name: not-a-subchart\n') },
    ];
    assert.deepEqual(
      vendoredCharts(files),
      new Map([
        ['redis', ['charts/cache-17.0.0.tgz']],
        ['common', ['charts/common']],
      ]),
    );
  });
});

describe('tool messages', () => {
  it("keeps the tool's error, drops the usage text kustomize prints after it, and bounds the length", () => {
    const stderr = [
      'Error: invalid Kustomization: json: cannot unmarshal number into Go struct field Kustomization.images.0.newTag of type string',
      'Usage:',
      '  kustomize edit set image [flags]',
      '',
      'Examples:',
      '  set image postgres=eu.gcr.io/my-project/postgres:latest',
    ].join('\n');
    assert.equal(
      toolMessage(stderr),
      'Error: invalid Kustomization: json: cannot unmarshal number into Go struct field Kustomization.images.0.newTag of type string',
    );
    assert.equal(
      toolMessage('walk.go:75: found symbolic link\nError: template: x.yaml:1:2: boom\n'),
      'walk.go:75: found symbolic link; Error: template: x.yaml:1:2: boom',
    );
    assert.equal(toolMessage(''), 'no output on stderr');
    const long = toolMessage(`Error: ${'x'.repeat(5000)}`);
    assert.equal(long.length, 2001);
    assert.ok(long.startsWith('Error: xxx') && long.includes('…'));
  });
});
