// End to end, as processes: Temporal dev server, the Ferry worker, the HTTP API and the Argo CD stand-in, driven
// through the `ferry` CLI and the HTTP API. Also: a worker SIGKILLed while a promotion waits on Argo CD after its
// push, and a look at the recorded workflow histories for credential values.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PromotionStatus } from '../../workflows/messages';
import { createExampleRepo } from '../../dev/example';
import { ensureTemporalCli, PROJECT_ROOT, startDevServer, type DevServer } from '../../dev/temporal';
import { makeToken } from '../standin/argocd/server';
import { freePort, spawnProcess, stopGroup, until, type Spawned } from '../helpers/processes';

const execFileAsync = promisify(execFile);
const ALICE = 'tok-alice-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const MALLORY = 'tok-mallory-9f8e7d6c5b4a39281706f5e4d3c2b1a0';
const ARGOCD_TOKEN = makeToken('ferry-promoter');
const GIT_PASSWORD = 'git-pw-5e3cr3t-d0-n0t-l34k';

function pipelineYaml(repoUrl: string, argocdUrl: string): string {
  return `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata:
  name: shop
spec:
  repo:
    url: ${repoUrl}
    branch: main
    credentials: gitops
  artifacts:
    - name: guestbook
      image: registry.example.com/team/guestbook
  stages:
    - name: dev
      promotion: auto
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
      argocd: { server: ${argocdUrl}, app: guestbook-dev, project: default, credentials: argocd, timeout: 2m }
    - name: prod
      after: [dev]
      approval: { required: 1, approvers: [alice, bob] }
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      argocd: { server: ${argocdUrl}, app: guestbook-prod, project: default, credentials: argocd, timeout: 2m }
`;
}

describe('end to end: CLI and HTTP API → worker → git → Argo CD (all real processes)', () => {
  let dir: string;
  let remote: string;
  let temporal: DevServer;
  let argocd: Spawned;
  let argocdUrl: string;
  let api: Spawned;
  let worker: Spawned;
  let apiUrl: string;
  let workerEnv: NodeJS.ProcessEnv;
  const cli = ensureTemporalCli();

  const git = (...args: string[]): string =>
    execFileSync('git', ['--git-dir', remote, ...args], { encoding: 'utf8' }).trim();
  // Not spawnSync: a test process that blocks while the CLI runs cannot tend its own idle connections.
  const ferry = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        [join(PROJECT_ROOT, 'bin', 'ferry.js'), ...args],
        {
          cwd: dir,
          encoding: 'utf8',
          env: { ...process.env, FERRY_URL: apiUrl, FERRY_TOKEN: ALICE, FERRY_HOME: join(dir, 'cli-home') },
          timeout: 180_000,
        },
        (error, stdout, stderr) => {
          const code = (error as { code?: unknown } | null)?.code;
          if (error && typeof code !== 'number') reject(error);
          else resolve({ status: typeof code === 'number' ? code : 0, stdout, stderr });
        },
      );
    });
  const http = async (
    method: string,
    path: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: await res.json() };
  };
  const control = async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${argocdUrl}/__standin${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    assert.ok(res.ok, `stand-in control ${method} ${path}: ${res.status} ${await res.clone().text()}`);
    return res.json();
  };
  const startWorker = (): Spawned =>
    spawnProcess(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'worker', 'main.ts')], {
      cwd: PROJECT_ROOT,
      env: workerEnv,
    });
  const promotion = async (id: string): Promise<PromotionStatus> => {
    const res = await http('GET', `/api/v1/promotions/${id}`, ALICE);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as PromotionStatus;
  };
  const finished = (id: string, timeoutMs = 120_000): Promise<PromotionStatus> =>
    until(
      `${id} to finish`,
      async () => {
        const s = await promotion(id);
        return ['Succeeded', 'Failed', 'Rejected', 'Aborted'].includes(s.phase) ? s : undefined;
      },
      timeoutMs,
    );

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-e2e-'));
    remote = createExampleRepo(join(dir, 'gitops.git')).path;
    temporal = await startDevServer({ cli, dbFile: join(dir, 'temporal.db'), port: await freePort(), uiPort: false });

    argocd = spawnProcess(
      process.execPath,
      [
        '--import',
        'tsx',
        join(PROJECT_ROOT, 'test', 'standin', 'argocd', 'main.ts'),
        '--port',
        '0',
        '--token',
        ARGOCD_TOKEN,
        '--timing',
        JSON.stringify({ postOpReconcileDelayMs: 600, progressingMs: 1200 }),
      ],
      { cwd: PROJECT_ROOT },
    );
    argocdUrl = JSON.parse((await argocd.waitFor(/\{"url":"[^"]+"\}/, 60_000))[0]).url as string;
    for (const stage of ['dev', 'prod']) {
      await control('POST', '/apps', {
        name: `guestbook-${stage}`,
        project: 'default',
        repoURL: `file://${remote}`,
        path: '.',
        targetRevision: `env/${stage}`,
        deployedRevision: null,
      });
    }

    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    const common = { ...process.env, TEMPORAL_ADDRESS: temporal.address, FERRY_HOME: join(dir, 'ferry-home') };
    workerEnv = {
      ...common,
      FERRY_SECRET_ARGOCD_TOKEN: ARGOCD_TOKEN,
      FERRY_SECRET_GITOPS_USERNAME: 'ferry',
      FERRY_SECRET_GITOPS_PASSWORD: GIT_PASSWORD,
      FERRY_ARGOCD_POLL_MS: '200',
      // The test's repository is a file:// path, which a worker refuses unless the operator opts in.
      FERRY_ALLOW_FILE_REPOS: '1',
    };
    worker = startWorker();
    api = spawnProcess(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'api', 'main.ts')], {
      cwd: PROJECT_ROOT,
      env: {
        ...common,
        FERRY_PORT: String(apiPort),
        FERRY_TOKENS: `${ALICE}=alice,${MALLORY}=mallory`,
        FERRY_ADMINS: 'alice',
      },
    });
    await worker.waitFor(/ferry worker polling/, 120_000);
    await api.waitFor(/ferry api listening/, 60_000);
    writeFileSync(join(dir, 'pipeline.yaml'), pipelineYaml(`file://${remote}`, argocdUrl));
  });

  after(async () => {
    for (const p of [api, worker, argocd]) if (p) await stopGroup(p);
    await temporal?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a pipeline file with five mistakes with five errors by path, and starts nothing', async () => {
    writeFileSync(
      join(dir, 'broken.yaml'),
      pipelineYaml(`file://${remote}`, argocdUrl)
        .replace('name: shop', 'name: broken')
        .replace('promotion: auto', 'promotion: sometimes')
        .replace('after: [dev]', 'after: [qa]')
        .replace('to: env/prod }', '}')
        .replace(
          'credentials: argocd, timeout: 2m }\n    - name: prod',
          'credentials: argocd, timeout: soon }\n    - name: prod',
        )
        .replace('  artifacts:', '  colour: blue\n  artifacts:'),
    );
    const applied = await ferry('apply', '-f', 'broken.yaml');
    assert.equal(applied.status, 1);
    const lines = applied.stderr
      .trim()
      .split('\n')
      .filter((l) => /^spec\./.test(l));
    assert.deepEqual(
      lines.map((l) => l.split(':')[0]),
      [
        'spec.colour',
        'spec.stages[0].promotion',
        'spec.stages[0].argocd.timeout',
        'spec.stages[1].after[0]',
        'spec.stages[1].render.to',
      ],
      applied.stderr,
    );
    const { stdout: listed } = await execFileAsync(
      cli,
      ['workflow', 'list', '--address', temporal.address, '--query', 'WorkflowId = "pipeline/broken"'],
      { encoding: 'utf8' },
    );
    assert.doesNotMatch(listed, /pipeline\/broken/);
  });

  it('promotes through the CLI into dev and waits until Argo CD is Synced and Healthy at the pushed commit', async () => {
    const applied = await ferry('apply', '-f', 'pipeline.yaml');
    assert.equal(applied.status, 0, applied.stderr);
    assert.match(applied.stdout, /pipeline shop applied \(stages: dev, prod\)/);

    const added = await ferry('freight', 'add', 'shop', 'guestbook=1.4.2');
    assert.equal(added.status, 0, added.stderr);
    const freight = added.stdout.trim();
    assert.match(freight, /^[0-9a-f]{12}$/);

    const promoted = await ferry('promote', 'shop', 'dev', freight, '--wait');
    assert.equal(promoted.status, 0, promoted.stdout + promoted.stderr);
    // dev is `promotion: auto`: on a busy machine its promotion may be done before the CLI asks, so the CLI may
    // see only the end. The steps say that it waited for health all the same.
    assert.match(promoted.stdout, /phase: Succeeded\n$/);

    const head = git('rev-parse', 'env/dev');
    const app = await control('GET', '/apps/guestbook-dev');
    assert.equal(app.status.sync.revision, head);
    assert.equal(app.status.sync.status, 'Synced');
    assert.equal(app.status.health.status, 'Healthy');
    assert.equal(app.status.operationState.syncResult.revision, head);
    const syncs = (await control('GET', '/requests?method=POST&app=guestbook-dev')) as Array<{
      path: string;
      body: any;
    }>;
    const sync = syncs.filter((r) => r.path.endsWith('/sync'));
    const history = (await http('GET', '/api/v1/pipelines/shop', ALICE)).body.stages[0].history;
    assert.equal(sync.length, 1, JSON.stringify({ sync, history, cli: promoted.stdout + promoted.stderr }, null, 1));
    assert.equal(sync[0].body.revision, undefined);
    assert.deepEqual(
      sync[0].body.infos.map((i: { name: string }) => i.name),
      ['ferry.dev/promotion'],
    );

    const got = await ferry('get', `promotion/shop/dev/${freight}`);
    assert.equal(got.status, 0, got.stderr);
    assert.match(got.stdout, /phase: +Succeeded/);
    assert.match(got.stdout, /^health +Succeeded /m);
    assert.ok(got.stdout.includes(head), got.stdout);
  });

  it('holds prod for approval over the HTTP API: 403 with the reason for a non-approver, then succeeds for alice', async () => {
    const pipeline = await http('GET', '/api/v1/pipelines/shop', ALICE);
    const freight = pipeline.body.stages.find((s: { name: string }) => s.name === 'dev').current.freight as string;
    const requested = await http('POST', '/api/v1/pipelines/shop/stages/prod/promotions', ALICE, { freight });
    assert.equal(requested.status, 201, JSON.stringify(requested.body));
    const id = requested.body.id as string;
    await until('approval gate', async () => ((await promotion(id)).phase === 'AwaitingApproval' ? true : undefined));

    const refused = await http('POST', `/api/v1/promotions/${id}/approve`, MALLORY, { comment: 'lgtm' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'Forbidden');
    assert.match(refused.body.error.message, /"mallory" is not an approver of stage "prod"/);
    await new Promise((r) => setTimeout(r, 500));
    const waiting = await promotion(id);
    assert.equal(waiting.phase, 'AwaitingApproval');
    assert.deepEqual(waiting.approvals, []);

    const approved = await http('POST', `/api/v1/promotions/${id}/approve`, ALICE, { comment: 'ship it' });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    const done = await finished(id);
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.equal(done.approvals[0].user, 'alice');
    assert.equal(done.commit, git('rev-parse', 'env/prod'));
    const app = await control('GET', '/apps/guestbook-prod');
    assert.equal(app.status.sync.revision, done.commit);
    assert.equal(app.status.health.status, 'Healthy');
  });

  it('fails a promotion whose app goes Degraded, with the reason from the app’s resources', async () => {
    await control('POST', '/injections', {
      kind: 'degraded',
      app: 'guestbook-dev',
      times: 1,
      message: 'Deployment "guestbook-dev" exceeded its progress deadline',
    });
    const added = await http('POST', '/api/v1/pipelines/shop/freight', ALICE, {
      artifacts: { guestbook: '1.4.3-rc.1' },
    });
    const done = await finished(`promotion/shop/dev/${added.body.id}`);
    assert.equal(done.phase, 'Failed');
    assert.match(done.error ?? '', /Degraded/);
    assert.match(done.error ?? '', /exceeded its progress deadline/);
    assert.equal(done.steps.find((s) => s.name === 'health')?.status, 'Failed');
  });

  it('fails at once, without retrying, when Argo CD refuses the token, and never records a credential value', async () => {
    await control('POST', '/injections', {
      kind: 'unauthenticated',
      app: 'guestbook-dev',
      message: 'invalid session: token has invalid signature',
    });
    const devBefore = git('rev-parse', 'env/dev');
    const added = await http('POST', '/api/v1/pipelines/shop/freight', ALICE, { artifacts: { guestbook: '1.4.4' } });
    const id = `promotion/shop/dev/${added.body.id}`;
    const done = await finished(id, 60_000);
    await control('DELETE', '/injections');
    assert.equal(done.phase, 'Failed');
    assert.match(done.error ?? '', /invalid session/);
    // Found before anything was written: the preflight failed, and the stage branch is where it was.
    assert.equal(done.reason, 'ArgoCdUnauthorized');
    assert.equal(done.steps.find((s) => s.name === 'preflight')?.status, 'Failed');
    assert.equal(done.steps.find((s) => s.name === 'render')?.status, 'Skipped');
    assert.equal(git('rev-parse', 'env/dev'), devBefore);

    for (const workflowId of [
      id,
      'promotion/shop/prod/' + (await http('GET', '/api/v1/pipelines/shop', ALICE)).body.stages[1].current.freight,
      'pipeline/shop',
    ]) {
      const { stdout: shown } = await execFileAsync(
        cli,
        ['workflow', 'show', '--address', temporal.address, '-w', workflowId, '--output', 'json'],
        { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      );
      assert.ok(shown.length > 1000, `history of ${workflowId} is recorded`);
      for (const secret of [
        ARGOCD_TOKEN,
        GIT_PASSWORD,
        ALICE,
        MALLORY,
        Buffer.from(`ferry:${GIT_PASSWORD}`).toString('base64'),
      ]) {
        assert.ok(!shown.includes(secret), `${workflowId} history contains a credential value`);
      }
    }
    for (const secret of [ARGOCD_TOKEN, GIT_PASSWORD, ALICE, MALLORY]) {
      assert.ok(!worker.output().includes(secret), 'worker output contains a credential value');
      assert.ok(!api.output().includes(secret), 'API output contains a credential value');
    }
  });

  it('fails a promotion whose Argo CD app does not exist before writing anything to the stage branch', async () => {
    await control('POST', '/injections', { kind: 'notFound', app: 'guestbook-dev' });
    const devBefore = git('rev-parse', 'env/dev');
    const added = await http('POST', '/api/v1/pipelines/shop/freight', ALICE, { artifacts: { guestbook: '1.4.5' } });
    const done = await finished(`promotion/shop/dev/${added.body.id}`, 60_000);
    await control('DELETE', '/injections');
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'ArgoCdNotFound');
    assert.match(done.error ?? '', /guestbook-dev/);
    assert.equal(done.steps.find((s) => s.name === 'render')?.status, 'Skipped');
    assert.equal(git('rev-parse', 'env/dev'), devBefore);
  });

  it('finishes a promotion whose worker was SIGKILLed while it waited on Argo CD after its push, with exactly one commit', async () => {
    await control('PUT', '/timing', { progressingMs: 6000 });
    const commitsBefore = Number(git('rev-list', '--count', 'env/dev'));
    const added = await http('POST', '/api/v1/pipelines/shop/freight', ALICE, { artifacts: { guestbook: '1.5.0' } });
    const id = `promotion/shop/dev/${added.body.id}`;
    const waiting = await until('the promotion to wait on Argo CD', async () => {
      const s = await promotion(id);
      return s.phase === 'WaitingHealthy' ? s : undefined;
    });
    assert.ok(waiting.commit);

    worker.child.kill('SIGKILL');
    await worker.exited;
    worker = startWorker();
    await worker.waitFor(/ferry worker polling/, 120_000);

    const done = await finished(id, 180_000);
    await control('PUT', '/timing', { progressingMs: 1200 });
    assert.equal(done.phase, 'Succeeded', done.error);
    assert.equal(done.commit, waiting.commit);
    assert.equal(Number(git('rev-list', '--count', 'env/dev')), commitsBefore + 1);
    const trailers = git('log', '--format=%(trailers:key=Ferry-Promotion,valueonly)', 'env/dev')
      .split('\n')
      .filter((line) => line.trim() === id);
    assert.equal(trailers.length, 1);
    assert.equal((await control('GET', '/apps/guestbook-dev')).status.sync.revision, done.commit);
  });
});
