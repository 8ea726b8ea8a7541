// The kustomize and helm engines against the real binaries: Ferry's renderAndPush writes a stage branch of a real
// bare repository, and the test then does by hand what a user would do in a checkout of the same commit (the
// commands spelled out below, as docs/engines.md documents them) and compares the committed manifests.yaml with
// the binary's own output, byte for byte.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { createRenderEngines, type RenderInput, type SourceFile } from '../../activities/render/engine';
import { createGitActivities } from '../../activities/render-and-push';
import type { GitActivitiesOptions } from '../../activities/render-and-push';
import { createSecretResolver } from '../../activities/secrets';
import type { RenderAndPushInput } from '../../activities/types';
import type { Artifact, RenderSpec } from '../../pipeline/schema';
import { git } from '../helpers/git';

process.env.GIT_CONFIG_GLOBAL = '/dev/null';
process.env.GIT_CONFIG_NOSYSTEM = '1';

/** The binaries `npm test` provides (installed by `npm run tools`); a missing one fails the suite, never skips it. */
function binary(env: 'FERRY_KUSTOMIZE_PATH' | 'FERRY_HELM_PATH'): string {
  const path = process.env[env];
  assert.ok(path, `${env} is not set: run \`npm run tools\` and the tests through \`npm test\`, which sets it`);
  return path;
}
let KUSTOMIZE = '';
let HELM = '';
before(() => {
  KUSTOMIZE = binary('FERRY_KUSTOMIZE_PATH');
  HELM = binary('FERRY_HELM_PATH');
});

const GUESTBOOK = 'registry.example.com/team/guestbook';
const PROXY = 'registry.example.com/team/proxy';
const ARTIFACTS: Artifact[] = [
  { name: 'guestbook', image: GUESTBOOK },
  { name: 'proxy', image: PROXY },
  // Used by no manifest: its `images:` entry must not change kustomize's output.
  { name: 'unused', image: 'registry.example.com/team/unused' },
];

function write(root: string, files: Record<string, string | Buffer>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

interface Fixture {
  dir: string;
  remote: string;
  workspaceRoot: string;
  /** Commits and pushes source changes to main; returns the new head. */
  pushSources(files: Record<string, string | Buffer>, remove?: string[]): string;
  remoteGit(...args: string[]): string;
  /** A fresh clone of the remote at `commit`, as a user would check it out. */
  checkout(commit: string): string;
}

function createFixture(t: { after: (fn: () => void) => void }, sources: Record<string, string | Buffer>): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-engines-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const remote = join(dir, 'gitops.git');
  git(dir, 'init', '--bare', '--quiet', '--initial-branch=main', remote);
  const dev = join(dir, 'dev');
  git(dir, 'clone', '--quiet', remote, dev);
  git(dev, 'checkout', '--quiet', '-b', 'main');
  const pushSources = (files: Record<string, string | Buffer>, remove: string[] = []) => {
    write(dev, files);
    for (const path of remove) git(dev, 'rm', '--quiet', '-r', path);
    git(dev, 'add', '.');
    git(dev, 'commit', '--quiet', '-m', 'sources');
    git(dev, 'push', '--quiet', 'origin', 'main');
    return git(dev, 'rev-parse', 'HEAD');
  };
  pushSources(sources);
  let checkouts = 0;
  return {
    dir,
    remote,
    workspaceRoot: join(dir, 'workspaces'),
    pushSources,
    remoteGit: (...args) => git(remote, ...args),
    checkout(commit) {
      const clone = join(dir, `checkout-${++checkouts}`);
      git(dir, 'clone', '--quiet', remote, clone);
      git(clone, 'checkout', '--quiet', commit);
      return clone;
    },
  };
}

function activities(fx: Fixture, options: Partial<GitActivitiesOptions> = {}) {
  return createGitActivities({
    workspaceRoot: fx.workspaceRoot,
    secrets: createSecretResolver({ env: {} }),
    allowFileRepos: true,
    renderTools: { kustomize: KUSTOMIZE, helm: HELM },
    ...options,
  });
}

function promotion(
  fx: Fixture,
  render: RenderSpec,
  versions: Record<string, string>,
  run = Object.values(versions).join('-'),
): RenderAndPushInput {
  return {
    pipeline: 'guestbook',
    stage: 'dev',
    promotionId: `promotion/guestbook/dev/${run}`,
    runId: `run-${run}`,
    repo: { url: `file://${fx.remote}`, branch: 'main' },
    render,
    artifacts: ARTIFACTS,
    freight: { id: `f-${run}`, artifacts: versions },
  };
}

/** A binary run by hand in `cwd`, with a HOME of its own (no kubeconfig, no helm repositories); its stdout. */
function byHand(fx: Fixture, cwd: string, command: string, args: string[]): Buffer {
  const home = mkdtempSync(join(fx.dir, 'home-'));
  const result = spawnSync(command, args, { cwd, env: { HOME: home, PATH: process.env.PATH ?? '' } });
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed: ${result.stderr?.toString()}`);
  return result.stdout;
}

/** Its stderr, for a command that must fail. */
function failingByHand(fx: Fixture, cwd: string, command: string, args: string[]): string {
  const home = mkdtempSync(join(fx.dir, 'home-'));
  const result = spawnSync(command, args, { cwd, env: { HOME: home, PATH: process.env.PATH ?? '' } });
  assert.notEqual(result.status, 0, `${command} ${args.join(' ')} was expected to fail`);
  return result.stderr.toString();
}

function branchFile(fx: Fixture, branch: string, path: string): Buffer {
  return execFileSync('git', ['--git-dir', fx.remote, 'show', `${branch}:${path}`]);
}

function ferryCommits(fx: Fixture, branch: string): number {
  return Number(fx.remoteGit('rev-list', '--count', branch));
}

async function assertFailure(
  promise: Promise<unknown>,
  expected: { type: string; nonRetryable: boolean; message: (RegExp | string)[] },
): Promise<ApplicationFailure> {
  let failure: ApplicationFailure | undefined;
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, expected.type, err.message);
    assert.equal(err.nonRetryable, expected.nonRetryable, err.message);
    for (const pattern of expected.message) {
      if (typeof pattern === 'string') assert.ok(err.message.includes(pattern), `${err.message}\nlacks\n${pattern}`);
      else assert.match(err.message, pattern);
    }
    failure = err;
    return true;
  });
  return failure!;
}

/** The render directories of this process left in the temporary directory (there must be none after a render). */
function leftoverRenderDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith(`ferry-render-${process.pid}.`));
}

// ---------------------------------------------------------------------------------------------------------------
// kustomize: a base, an overlay with a patch, a configMapGenerator, a component and `images:`

const OVERLAY = 'apps/guestbook/overlays/dev';

const KUSTOMIZE_SOURCES: Record<string, string> = {
  'apps/guestbook/base/kustomization.yaml': ['resources:', '  - deployment.yaml', '  - service.yaml', ''].join('\n'),
  'apps/guestbook/base/deployment.yaml': [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: guestbook',
    'spec:',
    '  replicas: 1',
    '  selector: {matchLabels: {app: guestbook}}',
    '  template:',
    '    metadata: {labels: {app: guestbook}}',
    '    spec:',
    '      containers:',
    '        - name: web',
    `          image: ${GUESTBOOK}:0.0.0`,
    '          envFrom: [{configMapRef: {name: guestbook-config}}]',
    '        - name: proxy',
    '          image: sidecar:0.0.0',
    '',
  ].join('\n'),
  'apps/guestbook/base/service.yaml': [
    'apiVersion: v1',
    'kind: Service',
    'metadata: {name: guestbook}',
    'spec: {selector: {app: guestbook}, ports: [{port: 80}]}',
    '',
  ].join('\n'),
  'apps/guestbook/components/monitoring/kustomization.yaml': [
    'apiVersion: kustomize.config.k8s.io/v1alpha1',
    'kind: Component',
    'patches:',
    '  - path: scrape.yaml',
    '',
  ].join('\n'),
  'apps/guestbook/components/monitoring/scrape.yaml': [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: guestbook}',
    'spec:',
    '  template:',
    '    metadata:',
    '      annotations: {prometheus.io/scrape: "true"}',
    '',
  ].join('\n'),
  [`${OVERLAY}/kustomization.yaml`]: [
    '# dev overlay',
    'resources:',
    '  - ../../base',
    'components:',
    '  - ../../components/monitoring',
    'namespace: guestbook-dev',
    'patches:',
    '  - path: replicas.yaml',
    'configMapGenerator:',
    '  - name: guestbook-config',
    '    files: [settings.yaml=config/settings.yaml]',
    '    envs: [config/dev.env]',
    'images:',
    '  # the base names the proxy by a short name, which sorts after its repository',
    '  - name: sidecar',
    `    newName: ${PROXY}`,
    '    newTag: "0.0.1"',
    '',
  ].join('\n'),
  [`${OVERLAY}/replicas.yaml`]:
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: guestbook}\nspec: {replicas: 2}\n',
  [`${OVERLAY}/config/settings.yaml`]: '# shown on the about page\nrelease:\n  version: "0.0.0"\ncolor: blue\n',
  [`${OVERLAY}/config/dev.env`]: 'LOG_LEVEL=debug\n',
  // Not referenced by the overlay: never read.
  'apps/other/kustomization.yaml': 'resources: [missing.yaml]\n',
};

const KUSTOMIZE_RENDER: RenderSpec = {
  strategy: 'branch',
  engine: 'kustomize',
  from: OVERLAY,
  to: 'env/dev',
  set: [{ key: 'release.version', artifact: 'guestbook', value: 'tag', file: 'config/settings.yaml' }],
};

/** What a user runs by hand for the kustomize stage with these versions, in a checkout; kustomize's stdout. */
function kustomizeByHand(fx: Fixture, commit: string, versions: { guestbook: string; proxy: string; unused?: string }) {
  const clone = fx.checkout(commit);
  // render.set: the one value in config/settings.yaml, edited in place.
  const settings = join(clone, OVERLAY, 'config/settings.yaml');
  writeFileSync(
    settings,
    readFileSync(settings, 'utf8').replace('version: "0.0.0"', `version: "${versions.guestbook}"`),
  );
  byHand(fx, join(clone, OVERLAY), KUSTOMIZE, [
    'edit',
    'set',
    'image',
    `${GUESTBOOK}=*:${versions.guestbook}`,
    `${PROXY}=*:${versions.proxy}`,
    // The overlay's own entry that maps the short name onto the proxy's repository: kustomize applies `images:`
    // entries in name order, so without this one the entry's own tag 0.0.1 would be applied last and win.
    `sidecar=*:${versions.proxy}`,
    ...(versions.unused ? [`registry.example.com/team/unused=*:${versions.unused}`] : []),
  ]);
  return byHand(fx, clone, KUSTOMIZE, ['build', OVERLAY]);
}

describe('kustomize engine', () => {
  it('commits exactly what `kustomize edit set image` and `kustomize build` give in a checkout', async (t) => {
    const fx = createFixture(t, KUSTOMIZE_SOURCES);
    const versions = { guestbook: '1.4.2', proxy: '2.0.0', unused: '9.9.9' };
    const result = await activities(fx).renderAndPush(promotion(fx, KUSTOMIZE_RENDER, versions));
    assert.equal(result.created, true);
    assert.equal(result.files, 1);
    assert.deepEqual(fx.remoteGit('ls-tree', '-r', '--name-only', 'env/dev').split('\n'), [
      '.ferry/rendered.json',
      'manifests.yaml',
    ]);

    const ferry = branchFile(fx, 'env/dev', 'manifests.yaml');
    const kustomize = kustomizeByHand(fx, result.sourceCommit, versions);
    assert.equal(ferry.toString('utf8'), kustomize.toString('utf8'));
    assert.ok(ferry.equals(kustomize), 'byte-identical');

    // What the commands did, seen in the output: both images set (the aliased one too), the patch, the component,
    // the generated ConfigMap with the set value, and nothing of the unused artifact.
    const text = ferry.toString('utf8');
    assert.match(text, new RegExp(`image: ${GUESTBOOK}:1\\.4\\.2\\n`));
    assert.match(text, new RegExp(`image: ${PROXY}:2\\.0\\.0\\n`));
    assert.match(text, /replicas: 2/);
    assert.match(text, /prometheus\.io\/scrape: "true"/);
    assert.match(text, /version: "1\.4\.2"/);
    assert.match(text, /LOG_LEVEL: debug/);
    assert.match(text, /name: guestbook-config-[a-z0-9]+\n/);
    assert.doesNotMatch(text, /unused|0\.0\.1/);
    // The images: entry of an artifact no manifest uses changes nothing.
    assert.ok(ferry.equals(kustomizeByHand(fx, result.sourceCommit, { guestbook: '1.4.2', proxy: '2.0.0' })));
    assert.deepEqual(leftoverRenderDirs(), []);
  });

  it('makes no new commit for the same freight again, and a new tag changes only the lines that carry it', async (t) => {
    const fx = createFixture(t, KUSTOMIZE_SOURCES);
    const ferry = activities(fx);
    const first = await ferry.renderAndPush(promotion(fx, KUSTOMIZE_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' }));
    const again = await ferry.renderAndPush(
      promotion(fx, KUSTOMIZE_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' }, 'second-run'),
    );
    assert.equal(again.created, false);
    assert.equal(again.commit, first.commit);
    assert.equal(ferryCommits(fx, 'env/dev'), 1);

    const before = branchFile(fx, 'env/dev', 'manifests.yaml').toString('utf8');
    const next = await ferry.renderAndPush(promotion(fx, KUSTOMIZE_RENDER, { guestbook: '1.4.3', proxy: '2.0.0' }));
    assert.equal(next.created, true);
    const after = branchFile(fx, 'env/dev', 'manifests.yaml').toString('utf8');
    // The tag, and the generated ConfigMap's name, whose hash covers the set value.
    const hash = (text: string) => /guestbook-config-([a-z0-9]+)/.exec(text)![1]!;
    assert.notEqual(hash(after), hash(before));
    assert.equal(after, before.replaceAll('1.4.2', '1.4.3').replaceAll(hash(before), hash(after)));
  });

  it('renders the same bytes twice from the same sources and freight', async (t) => {
    const fx = createFixture(t, KUSTOMIZE_SOURCES);
    const engine = createRenderEngines({ kustomize: KUSTOMIZE }).kustomize!;
    const input = engineInput(fx, KUSTOMIZE_RENDER, OVERLAY, { guestbook: '1.4.2', proxy: '2.0.0' });
    const [first] = await engine.render(input);
    const [second] = await engine.render(input);
    assert.ok(first!.content.length > 0);
    assert.ok(first!.content.equals(second!.content));
    assert.equal(first!.path, 'manifests.yaml');
    const [named] = await engine.render({ ...input, render: { ...KUSTOMIZE_RENDER, output: 'all/dev.yaml' } });
    assert.equal(named!.path, 'all/dev.yaml');
  });

  it("fails a broken kustomization with kustomize's own message, non-retryable RenderFailed, and pushes nothing", async (t) => {
    const fx = createFixture(t, KUSTOMIZE_SOURCES);
    const ferry = activities(fx);
    const good = await ferry.renderAndPush(promotion(fx, KUSTOMIZE_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' }));
    const broken = fx.pushSources({
      [`${OVERLAY}/kustomization.yaml`]: KUSTOMIZE_SOURCES[`${OVERLAY}/kustomization.yaml`]!.replace(
        '  - ../../base\n',
        '  - ../../base\n  - missing.yaml\n',
      ),
    });
    const clone = fx.checkout(broken);
    const said = failingByHand(fx, clone, KUSTOMIZE, ['build', OVERLAY]);
    // kustomize names files by absolute path; Ferry's message names them in the repository.
    const error = said.split('\n').find((line) => line.startsWith('Error:'))!;
    assert.ok(error, said);
    await assertFailure(ferry.renderAndPush(promotion(fx, KUSTOMIZE_RENDER, { guestbook: '1.4.3', proxy: '2.0.0' })), {
      type: 'RenderFailed',
      nonRetryable: true,
      message: [
        /^stage dev: kustomize build apps\/guestbook\/overlays\/dev failed: /,
        error.replaceAll(`${clone}/`, ''),
        /\(rendering file:\/\/.* branch main at [0-9a-f]{12}\)$/,
      ],
    });
    assert.equal(fx.remoteGit('rev-parse', 'env/dev'), good.commit, 'nothing pushed');
    assert.deepEqual(leftoverRenderDirs(), []);
  });

  it('refuses remote bases and paths outside the repository before running kustomize', async (t) => {
    const fx = createFixture(t, KUSTOMIZE_SOURCES);
    const engine = createRenderEngines({ kustomize: KUSTOMIZE }).kustomize!;
    const withResources = (resources: string[]) =>
      engine.render(
        engineInput(
          fx,
          KUSTOMIZE_RENDER,
          OVERLAY,
          { guestbook: '1.4.2', proxy: '2.0.0' },
          {
            'kustomization.yaml': `resources:\n${resources.map((r) => `  - ${r}\n`).join('')}`,
          },
        ),
      );
    await assertFailure(withResources(['../../base', 'https://github.com/org/app//deploy?ref=v1']), {
      type: 'RenderFailed',
      nonRetryable: true,
      message: [
        /^apps\/guestbook\/overlays\/dev\/kustomization\.yaml: resources entry "https:\/\/github\.com/,
        /remote reference/,
        /vendor it/,
      ],
    });
    await assertFailure(withResources(['github.com/org/app/deploy']), {
      type: 'RenderFailed',
      nonRetryable: true,
      message: [/remote reference/],
    });
    await assertFailure(withResources(['../../../../../etc']), {
      type: 'RenderFailed',
      nonRetryable: true,
      message: [/resources entry "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/etc" points outside the repository/],
    });
    await assertFailure(withResources(['/etc/kubernetes']), {
      type: 'RenderFailed',
      nonRetryable: true,
      message: [/points outside the repository/],
    });
    assert.deepEqual(leftoverRenderDirs(), []);
  });
});

/** A render of `from` straight through the engine, reading the commit at the head of main. */
function engineInput(
  fx: Fixture,
  render: RenderSpec,
  from: string,
  versions: Record<string, string>,
  override: Record<string, string> = {},
): RenderInput {
  const head = fx.remoteGit('rev-parse', 'main');
  const list = (dir: string): SourceFile[] | 'missing' | 'not-a-directory' => {
    const entries = fx
      .remoteGit('ls-tree', '-r', '--name-only', '--full-tree', head, '--', dir)
      .split('\n')
      .filter(Boolean);
    if (entries.length === 0) return 'missing';
    if (entries.length === 1 && entries[0] === dir) return 'not-a-directory';
    return entries.map((path) => ({ path: path.slice(dir.length + 1), content: branchFile(fx, head, path) }));
  };
  const files = list(from);
  assert.ok(typeof files !== 'string');
  return {
    pipeline: 'guestbook',
    from,
    files: [
      ...files.filter((f) => override[f.path] === undefined),
      ...Object.entries(override).map(([path, content]) => ({ path, content: Buffer.from(content) })),
    ],
    source: { list: async (dir) => list(dir) },
    render,
    artifacts: ARTIFACTS,
    versions,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// helm: a chart with a vendored subchart in charts/, a file:// dependency elsewhere in the repository, two values
// files, set values with and without a file, a namespace, a Kubernetes version, API versions and CRDs

const CHART = 'charts/guestbook';

function chartYaml(name: string, version: string, dependencies = ''): string {
  return `apiVersion: v2\nname: ${name}\nversion: ${version}\ntype: application\n${dependencies}`;
}

const HELM_SOURCES: Record<string, string> = {
  [`${CHART}/Chart.yaml`]: chartYaml(
    'guestbook',
    '0.3.0',
    [
      'dependencies:',
      '  - name: redis',
      '    version: 0.1.0',
      '    repository: https://charts.example.com/stable',
      '  - name: common',
      '    version: ">=0.2.0"',
      '    repository: file://../../lib/common',
      '',
    ].join('\n'),
  ),
  [`${CHART}/values.yaml`]: [
    '# guestbook defaults',
    'replicaCount: 1',
    'image:',
    `  repository: ${GUESTBOOK}`,
    '  tag: "0.0.0" # set by Ferry',
    'sidecar:',
    '  image: none',
    '',
  ].join('\n'),
  [`${CHART}/values-dev.yaml`]: 'replicaCount: 2\ncommon:\n  greeting: hello from dev\n',
  [`${CHART}/crds/widgets.yaml`]: [
    'apiVersion: apiextensions.k8s.io/v1',
    'kind: CustomResourceDefinition',
    'metadata: {name: widgets.example.com}',
    'spec: {group: example.com, names: {kind: Widget, plural: widgets}, scope: Namespaced, versions: []}',
    '',
  ].join('\n'),
  [`${CHART}/templates/deployment.yaml`]: [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: {{ .Release.Name }}',
    '  namespace: {{ .Release.Namespace }}',
    '  annotations:',
    '    kube-version: {{ .Capabilities.KubeVersion.Version | quote }}',
    '    has-monitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}',
    'spec:',
    '  replicas: {{ .Values.replicaCount }}',
    '  template:',
    '    spec:',
    '      containers:',
    '        - name: web',
    '          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"',
    '        - name: proxy',
    '          image: {{ .Values.sidecar.image | quote }}',
    '',
  ].join('\n'),
  // The library depends on another one in the repository: packaged into it first.
  'lib/common/Chart.yaml': chartYaml(
    'common',
    '0.2.0',
    'dependencies:\n  - name: labels\n    version: 0.1.0\n    repository: file://../labels\n',
  ),
  'lib/labels/Chart.yaml': chartYaml('labels', '0.1.0'),
  'lib/labels/templates/_labels.tpl': '{{- define "labels.team" -}}team: guestbook{{- end -}}\n',
  'lib/common/values.yaml': 'greeting: hello\nrelease: unknown\n',
  'lib/common/templates/configmap.yaml': [
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata: {name: {{ .Release.Name }}-common}',
    'data:',
    '  greeting: {{ .Values.greeting | quote }}',
    '  release: {{ .Values.release | quote }}',
    '  chart: {{ .Chart.Name }}-{{ .Chart.Version }}',
    '  {{ include "labels.team" . }}',
    '',
  ].join('\n'),
};

const HELM_RENDER: RenderSpec = {
  strategy: 'branch',
  engine: 'helm',
  from: CHART,
  to: 'env/dev',
  set: [
    { key: 'image.tag', artifact: 'guestbook', value: 'tag', file: 'values.yaml' },
    { key: 'sidecar.image', artifact: 'proxy', value: 'reference' },
    { key: 'common.release', artifact: 'guestbook', value: 'version' },
  ],
  helm: {
    releaseName: 'guestbook-dev',
    namespace: 'guestbook-dev',
    valuesFiles: ['values-dev.yaml'],
    kubeVersion: '1.31.0',
    apiVersions: ['monitoring.coreos.com/v1'],
    includeCRDs: true,
  },
};

/** A chart packaged as `helm dependency build` leaves a vendored dependency: charts/redis-0.1.0.tgz. */
function vendoredRedis(fx: Fixture): Buffer {
  const scratch = mkdtempSync(join(fx.dir, 'redis-'));
  write(scratch, {
    'redis/Chart.yaml': chartYaml('redis', '0.1.0'),
    'redis/values.yaml': 'port: 6379\n',
    'redis/templates/service.yaml':
      'apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-redis}\nspec: {ports: [{port: {{ .Values.port }}}]}\n',
  });
  byHand(fx, scratch, HELM, ['package', './redis', '--destination', '.']);
  return readFileSync(join(scratch, 'redis-0.1.0.tgz'));
}

function createHelmFixture(t: { after: (fn: () => void) => void }): Fixture {
  const fx = createFixture(t, HELM_SOURCES);
  fx.pushSources({ [`${CHART}/charts/redis-0.1.0.tgz`]: vendoredRedis(fx) });
  return fx;
}

/** What a user runs by hand for the helm stage with these versions, in a checkout; helm's stdout. */
function helmByHand(fx: Fixture, commit: string, versions: { guestbook: string; proxy: string }): Buffer {
  const clone = fx.checkout(commit);
  // render.set with a file: the tag in values.yaml, edited in place.
  const values = join(clone, CHART, 'values.yaml');
  writeFileSync(values, readFileSync(values, 'utf8').replace('tag: "0.0.0"', `tag: "${versions.guestbook}"`));
  // The file:// dependencies, packaged into the chart that names them as `helm dependency build` would: the
  // library's own dependency first.
  byHand(fx, clone, HELM, ['package', './lib/labels', '--destination', './lib/common/charts']);
  byHand(fx, clone, HELM, ['package', './lib/common', '--destination', `./${CHART}/charts`]);
  return byHand(fx, clone, HELM, [
    'template',
    'guestbook-dev',
    `./${CHART}`,
    '--namespace',
    'guestbook-dev',
    '-f',
    `./${CHART}/values-dev.yaml`,
    '--set-string',
    `sidecar.image=${PROXY}:${versions.proxy}`,
    '--set-string',
    `common.release=${versions.guestbook}`,
    '--kube-version',
    '1.31.0',
    '--api-versions',
    'monitoring.coreos.com/v1',
    '--include-crds',
  ]);
}

describe('helm engine', () => {
  it('commits exactly what `helm package` of the file:// dependency and `helm template` give in a checkout', async (t) => {
    const fx = createHelmFixture(t);
    const versions = { guestbook: '1.4.2', proxy: '2.0.0' };
    const result = await activities(fx).renderAndPush(promotion(fx, HELM_RENDER, versions));
    assert.equal(result.created, true);

    const ferry = branchFile(fx, 'env/dev', 'manifests.yaml');
    const helm = helmByHand(fx, result.sourceCommit, versions);
    assert.equal(ferry.toString('utf8'), helm.toString('utf8'));
    assert.ok(ferry.equals(helm), 'byte-identical');

    // What the flags did, seen in the output.
    const text = ferry.toString('utf8');
    assert.match(text, new RegExp(`image: "${GUESTBOOK}:1\\.4\\.2"`));
    assert.match(text, new RegExp(`image: "${PROXY}:2\\.0\\.0"`));
    assert.match(text, /namespace: guestbook-dev/);
    assert.match(text, /replicas: 2/);
    assert.match(text, /kube-version: "v1\.31\.0"/);
    assert.match(text, /has-monitoring: "true"/);
    assert.match(text, /kind: CustomResourceDefinition/);
    assert.match(text, /# Source: guestbook\/charts\/redis\/templates\/service\.yaml/);
    assert.match(
      text,
      /greeting: "hello from dev"\n {2}release: "1\.4\.2"\n {2}chart: common-0\.2\.0\n {2}team: guestbook/,
    );
    assert.deepEqual(leftoverRenderDirs(), []);
  });

  it('makes no new commit for the same freight again, and a new tag changes only the lines that carry it', async (t) => {
    const fx = createHelmFixture(t);
    const ferry = activities(fx);
    const first = await ferry.renderAndPush(promotion(fx, HELM_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' }));
    const again = await ferry.renderAndPush(
      promotion(fx, HELM_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' }, 'second-run'),
    );
    assert.equal(again.created, false);
    assert.equal(again.commit, first.commit);
    assert.equal(ferryCommits(fx, 'env/dev'), 1);

    const before = branchFile(fx, 'env/dev', 'manifests.yaml').toString('utf8');
    await ferry.renderAndPush(promotion(fx, HELM_RENDER, { guestbook: '1.4.3', proxy: '2.0.0' }));
    const after = branchFile(fx, 'env/dev', 'manifests.yaml').toString('utf8');
    assert.notEqual(after, before);
    assert.equal(after, before.replaceAll('1.4.2', '1.4.3'));
  });

  it('renders the same bytes twice, and takes the chart from the repository over a stale vendored copy', async (t) => {
    const fx = createHelmFixture(t);
    const engine = createRenderEngines({ helm: HELM }).helm!;
    const input = engineInput(fx, HELM_RENDER, CHART, { guestbook: '1.4.2', proxy: '2.0.0' });
    const [first] = await engine.render(input);
    const [second] = await engine.render(input);
    assert.ok(first!.content.equals(second!.content));

    // A copy of the library vendored unpacked in charts/ some time ago, same version, older templates. Beside
    // the packaged file:// source, helm would render one of the two at random (it keeps the first match of a map
    // it iterates in random order), so the file:// source at this commit must replace it. A helm that first lists
    // the chart's charts/ shows what helm is given.
    fx.pushSources({
      [`${CHART}/charts/common/Chart.yaml`]: chartYaml('common', '0.2.0'),
      [`${CHART}/charts/common/templates/configmap.yaml`]: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stale}\n',
    });
    const listingHelm = join(fx.dir, 'listing-helm');
    writeFileSync(listingHelm, `#!/bin/sh\n[ "$1" = template ] && (cd "$3/charts" && /bin/ls -1)\nexec ${HELM} "$@"\n`);
    chmodSync(listingHelm, 0o755);
    const listing = createRenderEngines({ helm: listingHelm }).helm!;
    const [fresh] = await listing.render(engineInput(fx, HELM_RENDER, CHART, { guestbook: '1.4.2', proxy: '2.0.0' }));
    const text = fresh!.content.toString('utf8');
    assert.equal(text, `common-0.2.0.tgz\nredis-0.1.0.tgz\n${first!.content.toString('utf8')}`);
  });

  it('refuses a dependency that is neither vendored in charts/ nor a file:// path: Ferry does not download charts', async (t) => {
    const fx = createFixture(t, HELM_SOURCES);
    await assertFailure(
      activities(fx).renderAndPush(promotion(fx, HELM_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' })),
      {
        type: 'RenderFailed',
        nonRetryable: true,
        message: [
          /^stage dev: charts\/guestbook\/Chart\.yaml: dependency "redis" \(https:\/\/charts\.example\.com\/stable\) is not vendored in charts\/guestbook\/charts\//,
          /Ferry does not download charts/,
          /helm dependency build charts\/guestbook/,
        ],
      },
    );
    assert.equal(fx.remoteGit('branch', '--list', 'env/dev'), '', 'nothing pushed');
  });

  it("fails a broken template with helm's own message, non-retryable RenderFailed", async (t) => {
    const fx = createHelmFixture(t);
    const head = fx.pushSources({ [`${CHART}/templates/broken.yaml`]: 'value: {{ .Values.nope.deeper }}\n' });
    const clone = fx.checkout(head);
    byHand(fx, clone, HELM, ['package', './lib/labels', '--destination', './lib/common/charts']);
    byHand(fx, clone, HELM, ['package', './lib/common', '--destination', `./${CHART}/charts`]);
    const said = failingByHand(fx, clone, HELM, ['template', 'guestbook-dev', `./${CHART}`]);
    const error = said.split('\n').find((line) => line.startsWith('Error:'))!;
    assert.ok(error, said);
    await assertFailure(
      activities(fx).renderAndPush(promotion(fx, HELM_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' })),
      {
        type: 'RenderFailed',
        nonRetryable: true,
        message: [/^stage dev: helm template charts\/guestbook failed: /, error],
      },
    );
    assert.equal(fx.remoteGit('branch', '--list', 'env/dev'), '', 'nothing pushed');
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('render binaries: missing, hanging', () => {
  it('fails RenderToolMissing, naming the setting and `npm run tools`, when the binary is not there', async (t) => {
    const fx = createFixture(t, KUSTOMIZE_SOURCES);
    const input = promotion(fx, KUSTOMIZE_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' });
    await assertFailure(
      activities(fx, { renderTools: { kustomize: join(fx.dir, 'no-such-kustomize') } }).renderAndPush(input),
      {
        type: 'RenderToolMissing',
        nonRetryable: true,
        message: [/no-such-kustomize/, /ENOENT/, /FERRY_KUSTOMIZE_PATH/, /npm run tools/],
      },
    );
    await assertFailure(activities(fx, { renderTools: {} }).renderAndPush(input), {
      type: 'RenderToolMissing',
      nonRetryable: true,
      message: [/^stage dev: render engine "kustomize" is not available on this worker/, /FERRY_KUSTOMIZE_PATH/],
    });
    await assertFailure(
      activities(fx, { renderTools: { kustomize: KUSTOMIZE } }).renderAndPush(
        promotion(fx, HELM_RENDER, { guestbook: '1.4.2', proxy: '2.0.0' }),
      ),
      {
        type: 'RenderToolMissing',
        nonRetryable: true,
        message: [/render engine "helm"/, /FERRY_HELM_PATH/, /npm run tools/],
      },
    );
    assert.equal(fx.remoteGit('branch', '--list', 'env/dev'), '', 'nothing pushed');
  });

  it('stops a binary that runs out of time, its whole process, as a retryable RenderTimedOut', async (t) => {
    const fx = createFixture(t, KUSTOMIZE_SOURCES);
    // A "kustomize" that never answers: it notes its pid, then sleeps for good.
    const pidFile = join(fx.dir, 'hanging.pid');
    const hanging = join(fx.dir, 'hanging-kustomize');
    writeFileSync(hanging, `#!/bin/sh\necho $$ > ${pidFile}\nexec /bin/sleep 1000\n`);
    chmodSync(hanging, 0o755);
    const engine = createRenderEngines({ kustomize: hanging, timeoutMs: 300 }).kustomize!;
    await assertFailure(engine.render(engineInput(fx, KUSTOMIZE_RENDER, OVERLAY, { guestbook: '1', proxy: '2' })), {
      type: 'RenderTimedOut',
      nonRetryable: false,
      message: [/kustomize edit set image .* did not finish within 300ms and was stopped/],
    });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the hanging process is gone');
    assert.deepEqual(leftoverRenderDirs(), []);
  });
});
