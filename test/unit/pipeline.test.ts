import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  formatSpecErrors,
  freightId,
  loadPipelineFile,
  parsePipelineText,
  validateFreight,
  validatePipeline,
  type LoadResult,
  type Pipeline,
  type SpecError,
} from '../../pipeline';
import { branchNameProblem, MAX_BRANCH_BYTES, repoPathProblem } from '../../pipeline/git-names';
import { guestbookYaml } from '../helpers/fixtures';

const GUESTBOOK = guestbookYaml(`
    - name: dev
      promotion: auto
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
      argocd: { server: https://argocd.example.com, app: guestbook-dev, credentials: argocd }
    - name: staging
      after: [dev]
      render: { strategy: branch, from: apps/guestbook/overlays/staging, to: env/staging }
    - name: prod
      after: [staging]
      approval: { approvers: [alice, bob] }
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
`);

/** A valid pipeline as plain data, for tests that break one thing in it. */
function guestbook(): {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    repo: Record<string, unknown>;
    artifacts: Array<Record<string, unknown>>;
    stages: Array<Record<string, unknown> & { render: Record<string, unknown> }>;
  };
} {
  return {
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'guestbook' },
    spec: {
      repo: { url: 'https://git.example.com/org/gitops.git', branch: 'main' },
      artifacts: [{ name: 'guestbook', image: 'registry.example.com/team/guestbook' }],
      stages: [
        { name: 'dev', render: { strategy: 'branch', from: 'apps/dev', to: 'env/dev' } },
        { name: 'staging', after: ['dev'], render: { strategy: 'branch', from: 'apps/staging', to: 'env/staging' } },
        { name: 'prod', after: ['staging'], render: { strategy: 'branch', from: 'apps/prod', to: 'env/prod' } },
      ],
    },
  };
}

function errorsOf(result: LoadResult): SpecError[] {
  assert.equal(result.ok, false, 'expected the pipeline to be rejected');
  return result.ok ? [] : result.errors;
}

function pipelineOf(result: LoadResult): Pipeline {
  if (!result.ok) assert.fail(`expected a valid pipeline, got:\n${formatSpecErrors(result.errors)}`);
  return result.pipeline;
}

const byPath = (errors: SpecError[]) => [...errors].sort((a, b) => a.path.localeCompare(b.path));

describe('pipeline loading', () => {
  test('a valid YAML pipeline loads with every default filled in', () => {
    const pipeline = pipelineOf(parsePipelineText(GUESTBOOK));
    assert.equal(pipeline.spec.repo.branch, 'main');
    assert.equal(pipeline.spec.repo.credentials, undefined);
    const [dev, staging, prod] = pipeline.spec.stages;
    assert.equal(dev.promotion, 'auto');
    assert.equal(staging.promotion, 'manual');
    assert.deepEqual(dev.after, []);
    assert.equal(dev.render.engine, 'plain');
    assert.equal(dev.argocd?.timeout, '10m');
    assert.equal(staging.argocd, undefined);
    assert.deepEqual(prod.approval, { required: 1, approvers: ['alice', 'bob'] });
  });

  test('JSON text loads the same pipeline as the equivalent YAML', () => {
    const fromYaml = pipelineOf(parsePipelineText(GUESTBOOK));
    const json = JSON.stringify(guestbook(), null, 2);
    const fromJson = pipelineOf(parsePipelineText(json, { source: 'body.json' }));
    assert.equal(fromJson.metadata.name, 'guestbook');
    assert.deepEqual(
      fromJson.spec.stages.map((s) => s.after),
      [[], ['dev'], ['staging']],
    );
    assert.equal(fromJson.spec.stages[0].promotion, fromYaml.spec.stages[1].promotion);
  });

  test('a file with five distinct mistakes gets exactly five errors back, each at its path, in file order', () => {
    const text = `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata: { name: guestbook }
spec:
  repo: { url: https://git.example.com/org/gitops.git }
  artifacts:
    - { name: guestbook, image: registry.example.com/team/guestbook }
  stages:
    - name: dev
      aprovals: { approvers: [alice] }
      render: { strategy: branch, from: apps/dev, to: env/dev }
    - name: staging
      after: [dev]
      render: { strategy: branch, from: apps/staging }
    - name: prod
      promotion: sometimes
      after: [stagin]
      render: { strategy: branch, from: apps/prod, to: env/prod }
    - name: dev
      render: { strategy: branch, from: apps/dev2, to: env/dev2 }
`;
    const errors = errorsOf(parsePipelineText(text, { source: 'pipeline.yaml' }));
    assert.deepEqual(errors, [
      { path: 'spec.stages[0].aprovals', message: 'unknown field' },
      { path: 'spec.stages[1].render.to', message: 'Required' },
      { path: 'spec.stages[2].promotion', message: 'must be one of "auto", "manual", not the string "sometimes"' },
      { path: 'spec.stages[2].after[0]', message: 'unknown stage "stagin"; the stages are "dev", "staging", "prod"' },
      { path: 'spec.stages[3].name', message: 'duplicate stage name "dev" (also spec.stages[0].name)' },
    ]);
  });

  test('formatSpecErrors prints one "path: message" line per error', () => {
    const value = guestbook();
    delete value.spec.stages[1].render.to;
    (value.spec.stages[0] as Record<string, unknown>).aprovals = 1;
    assert.equal(
      formatSpecErrors(errorsOf(validatePipeline(value))),
      'spec.stages[0].aprovals: unknown field\nspec.stages[1].render.to: Required',
    );
  });

  test('missing top-level fields each say Required, including fixed-value ones', () => {
    const errors = errorsOf(parsePipelineText('{}'));
    assert.deepEqual(byPath(errors), [
      { path: 'apiVersion', message: 'Required' },
      { path: 'kind', message: 'Required' },
      { path: 'metadata', message: 'Required' },
      { path: 'spec', message: 'Required' },
    ]);
  });

  test('fixed values and enums say what is allowed', () => {
    const value = guestbook();
    value.apiVersion = 'ferry.dev/v1';
    value.kind = 'Pipelines';
    value.spec.stages[0].render.strategy = 'trunk';
    value.spec.stages[0].promotion = 'always';
    const errors = errorsOf(validatePipeline(value));
    assert.deepEqual(byPath(errors), [
      { path: 'apiVersion', message: 'must be "ferry.dev/v1alpha1"' },
      { path: 'kind', message: 'must be "Pipeline"' },
      { path: 'spec.stages[0].promotion', message: 'must be one of "auto", "manual", not the string "always"' },
      {
        path: 'spec.stages[0].render.strategy',
        message: 'must be one of "branch", "directory", "pull-request", not the string "trunk"',
      },
    ]);
  });

  test('wrong types name what was expected and what was found, and are not judged again by the rules', () => {
    const value = guestbook();
    value.spec.repo.url = 42;
    value.spec.stages[0].after = 'staging';
    value.spec.stages[2].approval = { required: 1.5, approvers: ['alice'] };
    const errors = errorsOf(validatePipeline(value));
    assert.deepEqual(byPath(errors), [
      { path: 'spec.repo.url', message: 'must be a string, not the number 42' },
      { path: 'spec.stages[0].after', message: 'must be a list, not the string "staging"' },
      { path: 'spec.stages[2].approval.required', message: 'must be a whole number' },
    ]);
  });

  test('a document that is not a mapping is reported at the root', () => {
    assert.deepEqual(errorsOf(parsePipelineText('- a\n- b\n')), [
      { path: '(root)', message: 'must be a mapping (field: value), not a list' },
    ]);
  });

  test('a secret in the repository URL is refused', () => {
    const value = guestbook();
    value.spec.repo.url = 'https://bot:hunter22@git.example.com/org/gitops.git';
    const [error] = errorsOf(validatePipeline(value));
    assert.equal(error.path, 'spec.repo.url');
    assert.match(error.message, /must not contain a password/);
  });

  test('a token as the user of an https repository URL is refused; an ssh user is not', () => {
    const value = guestbook();
    value.spec.repo.url = 'https://ghp_0123456789abcdef@git.example.com/org/gitops.git';
    const [error] = errorsOf(validatePipeline(value));
    assert.equal(error.path, 'spec.repo.url');
    assert.match(error.message, /must not contain a user name or token/);
    value.spec.repo.url = 'ssh://git@git.example.com/org/gitops.git';
    assert.equal(validatePipeline(value).ok, true);
  });
});

describe('YAML text', () => {
  test('a syntax error names the source, line and column', () => {
    const text = 'apiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nmetadata:\n  name: guestbook\n name: again\n';
    const errors = errorsOf(parsePipelineText(text, { source: 'pipeline.yaml' }));
    assert.equal(errors.length, 1);
    assert.equal(errors[0].path, 'pipeline.yaml:5:1');
    assert.match(errors[0].message, /^YAML syntax error: /);
    assert.doesNotMatch(errors[0].message, /\n/);
  });

  test('a duplicate key is a syntax error at its line', () => {
    const [error] = errorsOf(parsePipelineText('kind: Pipeline\nkind: Pipeline\n'));
    assert.equal(error.path, '<input>:2:1');
    assert.match(error.message, /unique/);
  });

  test('several documents in one file are refused, pointing at the second', () => {
    const errors = errorsOf(parsePipelineText(`${GUESTBOOK}---\n${GUESTBOOK}`, { source: 'two.yaml' }));
    assert.equal(errors.length, 1);
    assert.equal(errors[0].path, `two.yaml:${GUESTBOOK.split('\n').length}:1`);
    assert.match(errors[0].message, /found 2 YAML documents where one pipeline was expected/);
  });

  test('a trailing document separator or comment does not count as a second document', () => {
    pipelineOf(parsePipelineText(`---\n${GUESTBOOK}---\n# the end\n`));
  });

  test('empty input and comment-only input are refused as empty', () => {
    for (const text of ['', '   \n', '# nothing here\n']) {
      assert.deepEqual(errorsOf(parsePipelineText(text, { source: 'empty.yaml' })), [
        { path: 'empty.yaml', message: 'empty: expected one pipeline document (YAML or JSON) with kind: Pipeline' },
      ]);
    }
  });

  test('loadPipelineFile reads a file and names it in syntax errors; a missing file is an error, not a throw', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-pipeline-'));
    const good = join(dir, 'good.yaml');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(good, GUESTBOOK);
    writeFileSync(bad, 'kind: [Pipeline\n');
    assert.equal(pipelineOf(await loadPipelineFile(good)).metadata.name, 'guestbook');
    assert.match(
      errorsOf(await loadPipelineFile(bad))[0].path,
      new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+$`),
    );
    assert.deepEqual(errorsOf(await loadPipelineFile(join(dir, 'absent.yaml'))), [
      { path: join(dir, 'absent.yaml'), message: 'cannot read the pipeline file: no such file' },
    ]);
  });
});

describe('rules across fields', () => {
  test('duplicate stage names are refused at the later stage', () => {
    const value = guestbook();
    value.spec.stages[2].name = 'dev';
    value.spec.stages[2].after = [];
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      { path: 'spec.stages[2].name', message: 'duplicate stage name "dev" (also spec.stages[0].name)' },
    ]);
  });

  test('duplicate artifact names are refused', () => {
    const value = guestbook();
    value.spec.artifacts.push({ name: 'guestbook', image: 'registry.example.com/team/other' });
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      { path: 'spec.artifacts[1].name', message: 'duplicate artifact name "guestbook" (also spec.artifacts[0].name)' },
    ]);
  });

  test('after naming an unknown stage lists the stages there are', () => {
    const value = guestbook();
    value.spec.stages[2].after = ['staging', 'qa'];
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      { path: 'spec.stages[2].after[1]', message: 'unknown stage "qa"; the stages are "dev", "staging", "prod"' },
    ]);
  });

  test('a stage coming after itself is refused', () => {
    const value = guestbook();
    value.spec.stages[1].after = ['dev', 'staging'];
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      { path: 'spec.stages[1].after[1]', message: 'a stage cannot come after itself' },
    ]);
  });

  test('a cycle in after is reported once, with the whole cycle spelled out', () => {
    const value = guestbook();
    value.spec.stages[0].after = ['prod'];
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      {
        path: 'spec.stages[0].after[0]',
        message:
          'cycle in "after": "dev" comes after "prod", which comes after "staging", which comes after "dev"; freight could never reach these stages',
      },
    ]);
  });

  test('two separate cycles are two errors', () => {
    const value = guestbook();
    value.spec.stages = [
      { name: 'a', after: ['b'], render: { strategy: 'branch', from: 'x', to: 'env/a' } },
      { name: 'b', after: ['a'], render: { strategy: 'branch', from: 'x', to: 'env/b' } },
      { name: 'c', after: ['d'], render: { strategy: 'branch', from: 'x', to: 'env/c' } },
      { name: 'd', after: ['c', 'a'], render: { strategy: 'branch', from: 'x', to: 'env/d' } },
    ];
    assert.deepEqual(
      errorsOf(validatePipeline(value)).map((e) => e.path),
      ['spec.stages[0].after[0]', 'spec.stages[2].after[0]'].sort(),
    );
  });

  test('approval.required above the number of different approvers is refused', () => {
    const value = guestbook();
    value.spec.stages[2].approval = { required: 3, approvers: ['alice', 'bob', 'alice'] };
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      {
        path: 'spec.stages[2].approval.required',
        message: 'requires 3 approvals but only 2 different approvers are listed',
      },
    ]);
    value.spec.stages[2].approval = { required: 2, approvers: ['alice', 'bob'] };
    pipelineOf(validatePipeline(value));
  });

  test('two stages rendering to the same branch are refused', () => {
    const value = guestbook();
    value.spec.stages[2].render.to = 'env/staging';
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      {
        path: 'spec.stages[2].render.to',
        message:
          'branch "env/staging" is already the branch of stage "staging" (spec.stages[1].render.to); each stage needs its own branch',
      },
    ]);
  });

  test('a stage rendering to the source branch is refused, also when that branch is the default', () => {
    const value = guestbook();
    delete value.spec.repo.branch;
    value.spec.stages[0].render.to = 'main';
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      {
        path: 'spec.stages[0].render.to',
        message:
          'must differ from spec.repo.branch ("main"): Ferry owns the stage\'s branch, and the sources live on spec.repo.branch',
      },
    ]);
  });

  test('a branch that would be a folder of another branch is refused', () => {
    const value = guestbook();
    value.spec.stages[1].render.to = 'env/dev/staging';
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      {
        path: 'spec.stages[1].render.to',
        message:
          'branch "env/dev/staging" cannot exist next to "env/dev" (spec.stages[0].render.to): in git one would be a folder of the other',
      },
    ]);
  });

  test('rules across fields are reported together with schema errors', () => {
    const value = guestbook();
    value.metadata.name = 'Guestbook';
    value.spec.stages[1].after = ['qa'];
    assert.deepEqual(
      errorsOf(validatePipeline(value)).map((e) => e.path),
      ['metadata.name', 'spec.stages[1].after[0]'],
    );
  });
});

describe('git names', () => {
  // Names git refuses and names it accepts, each for a rule of `git check-ref-format --branch`.
  const NAMES: Array<[string, boolean]> = [
    ['main', true],
    ['env/dev', true],
    ['env/dev-2.1', true],
    ['release/v1.4.x', true],
    ['a./b', true],
    ['x/HEAD', true],
    ['a@b', true],
    ['foo.lock.x', true],
    ['héllo/wörld', true],
    ['HEAD', false],
    ['-x', false],
    ['--', false],
    ['.x', false],
    ['env/.x', false],
    ['a..b', false],
    ['a.lock/b', false],
    ['a/b.lock', false],
    ['a.lock', false],
    ['a//b', false],
    ['/a', false],
    ['a/', false],
    ['a.', false],
    ['a b', false],
    ['a\tb', false],
    ['a\u0001b', false],
    ['a\u007fb', false],
    ['a~b', false],
    ['a^b', false],
    ['a:b', false],
    ['a?b', false],
    ['a*b', false],
    ['a[b', false],
    ['a\\b', false],
    ['a@{b', false],
    ['@{-1}', false],
  ];

  test('branchNameProblem agrees with git check-ref-format --branch on a table of names', () => {
    const outsideRepo = mkdtempSync(join(tmpdir(), 'ferry-refnames-'));
    const disagreements: string[] = [];
    for (const [name, valid] of NAMES) {
      // Outside any repository: inside one, git expands `@{-1}` to the branch checked out before.
      const git = spawnSync('git', ['check-ref-format', '--branch', name], { encoding: 'utf8', cwd: outsideRepo });
      const gitSays = git.status === 0;
      const oursSays = branchNameProblem(name) === undefined;
      assert.equal(gitSays, valid, `the table is wrong about ${JSON.stringify(name)} (git says ${gitSays})`);
      if (oursSays !== gitSays) disagreements.push(`${JSON.stringify(name)}: git ${gitSays}, Ferry ${oursSays}`);
    }
    rmSync(outsideRepo, { recursive: true, force: true });
    assert.deepEqual(disagreements, []);
  });

  test('beyond git: "@" alone and names over the byte limit are refused; the limit itself is accepted', () => {
    assert.match(branchNameProblem('@') ?? '', /current commit/);
    assert.equal(branchNameProblem('e'.repeat(MAX_BRANCH_BYTES)), undefined);
    assert.match(branchNameProblem('e'.repeat(300)) ?? '', /300 bytes long; the limit is 244/);
    // Bytes, not characters: 123 two-byte characters are 246 bytes.
    assert.match(branchNameProblem('é'.repeat(123)) ?? '', /246 bytes/);
  });

  test('render.to names git refuses are refused at apply time, each with its path and the reason', () => {
    const refused: Record<string, RegExp> = {
      HEAD: /"HEAD" means the current commit/,
      '-x': /starts with "-"/,
      '.x': /component ".x" starts with "."/,
      'a..b': /contains "\.\."/,
      'a.lock/b': /component "a\.lock" ends with "\.lock"/,
      'a//b': /contains "\/\/"/,
      'env/a\u0007b': /control character U\+0007/,
      'a@{1}': /contains "@\{"/,
      'env/': /ends with "\/"/,
      [`env/${'x'.repeat(296)}`]: /300 bytes long/,
    };
    for (const [name, reason] of Object.entries(refused)) {
      const value = guestbook();
      value.spec.stages[1].render.to = name;
      const errors = errorsOf(validatePipeline(value));
      assert.equal(errors.length, 1, `${JSON.stringify(name)}: ${formatSpecErrors(errors)}`);
      assert.equal(errors[0].path, 'spec.stages[1].render.to');
      assert.match(errors[0].message, /^not a valid git branch name: /);
      assert.match(errors[0].message, reason);
    }
  });

  test('spec.repo.branch follows the same rules', () => {
    const value = guestbook();
    value.spec.repo.branch = 'main.lock';
    assert.deepEqual(errorsOf(validatePipeline(value)), [
      {
        path: 'spec.repo.branch',
        message: 'not a valid git branch name: its path component "main.lock" ends with ".lock"',
      },
    ]);
  });

  test('render.from must be a clean relative path', () => {
    const refused: Record<string, RegExp> = {
      '/etc/ferry': /not an absolute path/,
      '../outside': /"\.\." is not allowed/,
      'apps/../../x': /"\.\." is not allowed/,
      'apps/\u0000dev': /control character U\+0000/,
      'apps/\ndev': /control character U\+000A/,
      'apps//dev': /empty or "\." path components/,
      'apps\\dev': /not "\\"/,
      '.git/hooks': /into "\.git"/,
    };
    for (const [from, reason] of Object.entries(refused)) {
      const value = guestbook();
      value.spec.stages[0].render.from = from;
      const errors = errorsOf(validatePipeline(value));
      assert.deepEqual(
        errors.map((e) => e.path),
        ['spec.stages[0].render.from'],
        JSON.stringify(from),
      );
      assert.match(errors[0].message, reason, JSON.stringify(from));
    }
    for (const from of ['.', './', 'apps/dev', './apps/dev/', 'apps/dev..old']) {
      assert.equal(repoPathProblem(from), undefined, from);
    }
  });
});

describe('freight', () => {
  test('the id is 12 hex digits of a content hash, pinned so ids stay stable across versions of Ferry', () => {
    const id = freightId({ guestbook: '1.4.2' });
    assert.match(id, /^[0-9a-f]{12}$/);
    assert.equal(id, '147e2509566b');
  });

  test('the same versions give the same id whatever the key order', () => {
    assert.equal(
      freightId({ guestbook: '1.4.2', worker: '0.9.0' }),
      freightId({ worker: '0.9.0', guestbook: '1.4.2' }),
    );
  });

  test('different versions, or the same versions under other names, give different ids', () => {
    const ids = new Set([
      freightId({ guestbook: '1.4.2' }),
      freightId({ guestbook: '1.4.3' }),
      freightId({ worker: '1.4.2' }),
      freightId({ guestbook: '1.4.2', worker: '0.9.0' }),
      freightId({ guestbook: '1.4.20', worker: '.9.0' }),
    ]);
    assert.equal(ids.size, 5);
  });

  const pipeline = pipelineOf(
    validatePipeline({
      ...guestbook(),
      spec: {
        ...guestbook().spec,
        artifacts: [
          { name: 'guestbook', image: 'registry.example.com/team/guestbook' },
          { name: 'worker', image: 'registry.example.com/team/worker' },
        ],
      },
    }),
  );
  const digest = `sha256:${'a1'.repeat(32)}`;

  test('freight naming every artifact with a tag or a digest is valid', () => {
    assert.deepEqual(validateFreight(pipeline, { guestbook: '1.4.2', worker: digest }), []);
    assert.deepEqual(validateFreight(pipeline, { guestbook: 'v1.4.2-rc.1_build', worker: '_latest' }), []);
  });

  test('a missing artifact is Required, an unknown one lists the known ones', () => {
    assert.deepEqual(byPath(validateFreight(pipeline, { guestbok: '1.4.2' })), [
      {
        path: 'artifacts.guestbok',
        message: 'unknown artifact "guestbok"; pipeline "guestbook" has "guestbook", "worker"',
      },
      { path: 'artifacts.guestbook', message: 'Required: a version of registry.example.com/team/guestbook' },
      { path: 'artifacts.worker', message: 'Required: a version of registry.example.com/team/worker' },
    ]);
  });

  test('versions must be image tags or sha256 digests', () => {
    const errors = validateFreight(pipeline, {
      guestbook: '-1.4.2',
      worker: `sha256:${'A1'.repeat(32)}`,
    });
    assert.deepEqual(
      errors.map((e) => e.path),
      ['artifacts.guestbook', 'artifacts.worker'],
    );
    for (const error of errors) assert.match(error.message, /is not an image tag .* or a digest/);
    assert.equal(validateFreight(pipeline, { guestbook: 'x'.repeat(129), worker: '1' }).length, 1);
    assert.equal(validateFreight(pipeline, { guestbook: 'x'.repeat(128), worker: '1' }).length, 0);
    assert.deepEqual(validateFreight(pipeline, { guestbook: 142, worker: null }), [
      {
        path: 'artifacts.guestbook',
        message: 'must be a version string (an image tag or sha256:<digest>), not number',
      },
      { path: 'artifacts.worker', message: 'must be a version string (an image tag or sha256:<digest>), not null' },
    ]);
  });

  test('freight that is not an object is refused with an example of the right shape', () => {
    for (const value of [null, ['guestbook=1.4.2'], 'guestbook=1.4.2']) {
      const errors = validateFreight(pipeline, value);
      assert.equal(errors.length, 1);
      assert.equal(errors[0].path, 'artifacts');
      assert.match(
        errors[0].message,
        /must be an object of artifact name → version, e\.g\. \{"guestbook":"1\.0\.0","worker":"1\.0\.0"\}/,
      );
    }
  });

  test('artifact names that are not plain words are quoted in the path', () => {
    assert.equal(
      validateFreight(pipeline, { guestbook: '1', worker: '1', 'my app': '1' })[0].path,
      'artifacts["my app"]',
    );
  });
});
