// The real `ferry` CLI (node bin/ferry.js, a child process) against the real HTTP API app, backed by an in-memory
// FerryApi. The output checked here is what scripts and the README rely on.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { createTokenStore } from '../../client/auth';
import { startApiServer } from '../../client/api/server';
import { FerryError } from '../../client/errors';
import { silentLogger } from '../../client/log';
import type { FerryApi, PipelineSummary } from '../../client/types';
import { freightId } from '../../pipeline/freight';
import type { Pipeline } from '../../pipeline/schema';
import {
  promotionWorkflowId,
  type AddFreightResult,
  type Decision,
  type PipelineStatus,
  type PromotionPhase,
  type PromotionRequested,
  type PromotionStatus,
} from '../../workflows/messages';

const ROOT = path.resolve(__dirname, '..', '..');
const TOKEN = 'cli-test-token-0123456789';

/**
 * A FerryApi in memory whose promotions move one phase further each time they are read, following a script per
 * stage, so `promote --wait` sees phase changes and an end.
 */
class ScriptedFerry implements FerryApi {
  applied: Pipeline[] = [];
  pipelines = new Map<string, PipelineStatus>();
  promotions = new Map<string, { status: PromotionStatus; script: PromotionPhase[] }>();
  decisions: Array<{ action: string; id: string; decision: Decision }> = [];

  static readonly SCRIPTS: Record<string, PromotionPhase[]> = {
    dev: ['Pending', 'Rendering', 'Succeeded'],
    broken: ['Pending', 'Rendering', 'Failed'],
    prod: ['AwaitingApproval'],
  };

  async health(): Promise<boolean> {
    return true;
  }
  async applyPipeline(spec: Pipeline): Promise<PipelineStatus> {
    this.applied.push(spec);
    const status: PipelineStatus = {
      name: spec.metadata.name,
      spec,
      appliedAt: '2025-01-01T00:00:00.000Z',
      stages: spec.spec.stages.map((s) => ({ name: s.name, queue: [], active: [], history: [] })),
      freight: [],
    };
    this.pipelines.set(status.name, status);
    return status;
  }
  async listPipelines(): Promise<PipelineSummary[]> {
    return [...this.pipelines.values()].map((p) => ({ name: p.name, stages: p.stages.map((s) => s.name), status: 'Running' }));
  }
  async getPipeline(name: string): Promise<PipelineStatus> {
    const status = this.pipelines.get(name);
    if (!status) throw new FerryError('NotFound', `pipeline "${name}" not found`);
    return status;
  }
  async addFreight(pipeline: string, artifacts: Record<string, string>): Promise<AddFreightResult> {
    const status = await this.getPipeline(pipeline);
    const id = freightId(artifacts);
    if (status.freight.some((f) => f.id === id)) return { id, created: false };
    status.freight.unshift({ id, artifacts, createdAt: '2025-01-01T00:00:01.000Z', verifiedIn: [] });
    return { id, created: true };
  }
  async promote(pipeline: string, stage: string, freight: string, requestedBy: string): Promise<PromotionRequested> {
    const pipelineStatus = await this.getPipeline(pipeline);
    const entry = pipelineStatus.freight.find((f) => f.id === freight);
    if (!entry) throw new FerryError('NotFound', `pipeline "${pipeline}" has no freight "${freight}"`);
    const id = promotionWorkflowId(pipeline, stage, freight);
    if (this.promotions.has(id)) return { id, existing: true };
    const script = [...ScriptedFerry.SCRIPTS[stage]];
    const approval = pipelineStatus.spec.spec.stages.find((s) => s.name === stage)?.approval;
    this.promotions.set(id, {
      script,
      status: {
        id,
        pipeline,
        stage,
        freight: { id: entry.id, artifacts: entry.artifacts },
        phase: script[0],
        steps: [],
        ...(approval ? { approval: { required: approval.required, approvers: approval.approvers } } : {}),
        approvals: [],
        requestedBy,
        startedAt: '2025-01-01T00:00:02.000Z',
      },
    });
    const stageState = pipelineStatus.stages.find((s) => s.name === stage);
    stageState?.active.push({ id, freight, requestedBy, requestedAt: '2025-01-01T00:00:02.000Z' });
    return { id, existing: false };
  }
  async getPromotion(id: string): Promise<PromotionStatus> {
    const entry = this.promotions.get(id);
    if (!entry) throw new FerryError('NotFound', `promotion "${id}" not found`);
    const { status, script } = entry;
    status.phase = script.length > 1 ? (script.shift() as PromotionPhase) : script[0];
    if (status.phase === 'Failed') status.error = 'render: apps/guestbook/overlays/broken does not exist on main';
    return status;
  }
  async approve(id: string, decision: Decision): Promise<PromotionStatus> {
    const entry = this.promotions.get(id);
    if (!entry) throw new FerryError('NotFound', `promotion "${id}" not found`);
    if (!entry.status.approval?.approvers.includes(decision.user)) {
      throw new FerryError('Forbidden', `${decision.user} is not an approver of stage "${entry.status.stage}"`);
    }
    this.decisions.push({ action: 'approve', id, decision });
    entry.status.approvals.push({ user: decision.user, at: '2025-01-01T00:00:03.000Z', comment: decision.comment });
    entry.status.phase = 'Queued';
    entry.script = ['Queued'];
    return entry.status;
  }
  async reject(id: string, decision: Decision): Promise<PromotionStatus> {
    this.decisions.push({ action: 'reject', id, decision });
    return this.getPromotion(id);
  }
  async abort(id: string, decision: Decision): Promise<PromotionStatus> {
    this.decisions.push({ action: 'abort', id, decision });
    return this.getPromotion(id);
  }
  async waitForPromotion(id: string): Promise<PromotionStatus> {
    return this.getPromotion(id);
  }
}

const PIPELINE_YAML = `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata:
  name: guestbook
spec:
  repo:
    url: https://git.example.com/org/gitops.git
  artifacts:
    - name: guestbook
      image: registry.example.com/team/guestbook
  stages:
    - name: dev
      render: { strategy: branch, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: broken
      render: { strategy: branch, from: apps/guestbook/overlays/broken, to: env/broken }
    - name: prod
      after: [dev]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
      approval: { approvers: [alice] }
`;

const FIVE_MISTAKES_YAML = `apiVersion: ferry.dev/v2
kind: Pipeline
metadata:
  name: guestbook
spec:
  repo:
    url: ftp://git.example.com/org/gitops.git
  artifacts:
    - name: guestbook
      image: registry.example.com/team/guestbook:1.0
  stages:
    - name: dev
      render: { strategy: directory, from: apps/guestbook/overlays/dev, to: env/dev }
    - name: prod
      after: [qa]
      render: { strategy: branch, from: apps/guestbook/overlays/prod, to: env/prod }
`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface World {
  ferry: ScriptedFerry;
  /** Runs `ferry ARGS` in the test's directory; FERRY_HOME is left to its default (.ferry in that directory). */
  cli(args: string[], env?: Record<string, string>): Promise<Run>;
  work: string;
  applied(): Promise<void>;
  addedFreight(): Promise<string>;
}

/** Each test has its own API server, fake and directory, so the CLI runs (child processes) can overlap. */
async function world(t: TestContext): Promise<World> {
  const ferry = new ScriptedFerry();
  const tokens = createTokenStore({ file: null, env: {}, tokens: { [TOKEN]: 'alice' } });
  const server = await startApiServer({ ferry, tokens, port: 0, logger: silentLogger });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cli-'));
  t.after(async () => {
    await server.close();
    fs.rmSync(work, { recursive: true, force: true });
  });
  // The CLI finds its token in $FERRY_HOME/token, as `npm start` leaves it.
  fs.mkdirSync(path.join(work, '.ferry'));
  fs.writeFileSync(path.join(work, '.ferry', 'token'), `${TOKEN}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(work, 'pipeline.yaml'), PIPELINE_YAML);
  fs.writeFileSync(path.join(work, 'broken.yaml'), FIVE_MISTAKES_YAML);

  const cli = (args: string[], env: Record<string, string> = {}): Promise<Run> => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, FERRY_URL: server.url, ...env };
    if (!('FERRY_TOKEN' in env)) delete childEnv.FERRY_TOKEN;
    delete childEnv.FERRY_HOME;
    return new Promise((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'bin', 'ferry.js'), ...args], { cwd: work, env: childEnv }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
      });
    });
  };
  return {
    ferry,
    cli,
    work,
    async applied() {
      const run = await cli(['apply', '-f', 'pipeline.yaml']);
      assert.equal(run.code, 0, run.stderr);
    },
    async addedFreight() {
      const run = await cli(['freight', 'add', 'guestbook', 'guestbook=1.4.2']);
      assert.equal(run.code, 0, run.stderr);
      return run.stdout.trim();
    },
  };
}

describe('ferry CLI', { concurrency: true }, () => {
  test('apply sends the file with the token from $FERRY_HOME/token and says what it applied', async (t) => {
    const { ferry, cli } = await world(t);
    const run = await cli(['apply', '-f', 'pipeline.yaml']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'pipeline guestbook applied (stages: dev, broken, prod)\n');
    assert.equal(ferry.applied.length, 1);
  });

  test('apply of a file with mistakes prints every one as "path: message" and exits 1', async (t) => {
    const { ferry, cli } = await world(t);
    const run = await cli(['apply', '-f', 'broken.yaml']);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trimEnd().split('\n');
    assert.equal(lines[0], 'error: pipeline "guestbook" is invalid: 5 errors');
    assert.deepEqual(lines.slice(1).map((line) => line.slice(0, line.indexOf(': '))).sort(), [
      'apiVersion',
      'spec.artifacts[0].image',
      'spec.repo.url',
      'spec.stages[0].render.strategy',
      'spec.stages[1].after[0]',
    ]);
    assert.ok(lines.slice(1).every((line) => /^\S+: \S/.test(line)), run.stderr);
    assert.equal(ferry.applied.length, 0);
  });

  test('apply of a file without metadata.name reports the mistakes without calling the API', async (t) => {
    const { ferry, cli, work } = await world(t);
    fs.writeFileSync(path.join(work, 'nameless.yaml'), 'apiVersion: ferry.dev/v1alpha1\nkind: Pipeline\n');
    const run = await cli(['apply', '-f', 'nameless.yaml']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: nameless.yaml is not a valid pipeline\n/);
    assert.match(run.stderr, /^metadata: /m);
    assert.equal(ferry.applied.length, 0);
  });

  test('freight add prints only the freight id', async (t) => {
    const { cli, applied } = await world(t);
    await applied();
    const run = await cli(['freight', 'add', 'guestbook', 'guestbook=1.4.2']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${freightId({ guestbook: '1.4.2' })}\n`);

    const json = await cli(['freight', 'add', 'guestbook', 'guestbook=1.4.2', '--json']);
    assert.deepEqual(JSON.parse(json.stdout), { id: freightId({ guestbook: '1.4.2' }), created: false });
  });

  test('freight add with an unknown artifact prints the field error and exits 1', async (t) => {
    const { cli, applied } = await world(t);
    await applied();
    const run = await cli(['freight', 'add', 'guestbook', 'redis=7.2', 'guestbook=1.4.2']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: freight does not match the artifacts of pipeline "guestbook"\nartifacts.redis: unknown artifact "redis"/);
  });

  test('promote prints only the promotion id, so ID=$(ferry promote ...) works', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const run = await cli(['promote', 'guestbook', 'prod', freight]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `promotion/guestbook/prod/${freight}\n`);
  });

  test('promote --wait prints phase changes and exits 0 when the promotion succeeds', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const run = await cli(['promote', 'guestbook', 'dev', freight, '--wait']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, [`promotion/guestbook/dev/${freight}`, 'phase: Pending', 'phase: Rendering', 'phase: Succeeded', ''].join('\n'));
  });

  test('promote --wait exits 1 with the error when the promotion fails', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const run = await cli(['promote', 'guestbook', 'broken', freight, '--wait']);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /phase: Failed\n$/);
    assert.equal(
      run.stderr,
      `error: promotion promotion/guestbook/broken/${freight} ended Failed: render: apps/guestbook/overlays/broken does not exist on main\n`,
    );
  });

  test('approve records the token user and the comment; get shows the promotion', async (t) => {
    const { ferry, cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    const id = `promotion/guestbook/prod/${freight}`;
    await cli(['promote', 'guestbook', 'prod', freight]);
    const run = await cli(['approve', id, '-m', 'ship it']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `approved ${id}: phase Queued, 1 of 1 approvals\n`);
    assert.deepEqual(ferry.decisions, [{ action: 'approve', id, decision: { user: 'alice', comment: 'ship it' } }]);

    const get = await cli(['get', id]);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^promotion: +promotion\/guestbook\/prod\/\w+$/m);
    assert.match(get.stdout, /^phase: +Queued$/m);
    assert.match(get.stdout, /^approvals: +1 of 1 \(approvers: alice\)\n +alice at 2025-01-01T00:00:03.000Z "ship it"$/m);
  });

  test('status prints a table of stages and the freight', async (t) => {
    const { cli, applied, addedFreight } = await world(t);
    await applied();
    const freight = await addedFreight();
    await cli(['promote', 'guestbook', 'prod', freight]);
    const run = await cli(['status', 'guestbook']);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split('\n');
    assert.equal(lines[0], 'pipeline guestbook (applied 2025-01-01T00:00:00.000Z)');
    assert.match(lines[2], /^STAGE +CURRENT +RUNNING +QUEUED +WAITING$/);
    assert.match(lines[5], new RegExp(`^prod +- +- +- +${freight}$`));
    assert.ok(lines.some((line) => new RegExp(`^${freight} +guestbook=1.4.2 +- +2025-01-01T00:00:01.000Z$`).test(line)), run.stdout);

    const json = await cli(['status', 'guestbook', '--json']);
    assert.equal((JSON.parse(json.stdout) as PipelineStatus).name, 'guestbook');
  });

  test('a refused token prints the error and a hint, and exits 1', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['status', 'guestbook'], { FERRY_TOKEN: 'wrong-token' });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: the bearer token is not valid\nhint: the token from FERRY_TOKEN was refused/);
    assert.ok(!run.stderr.includes('wrong-token'));
  });

  test('an unknown pipeline is reported as the API says, exit 1', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['status', 'nope']);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, 'error: pipeline "nope" not found\n');
  });

  test('an unreachable API is reported with where it was looked for, exit 1', async (t) => {
    const { cli } = await world(t);
    const run = await cli(['get', 'promotion/a/b/c'], { FERRY_URL: 'http://127.0.0.1:9' });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error: cannot reach the Ferry API at http:\/\/127.0.0.1:9 /);
  });

  test('usage errors exit 2: unknown command, missing arguments, unknown option, a bad NAME=VERSION', async (t) => {
    const { cli } = await world(t);
    for (const args of [['deploy'], ['promote', 'guestbook', 'dev'], ['status', 'guestbook', '--force'], ['freight', 'add', 'guestbook', 'guestbook'], []]) {
      const run = await cli(args);
      assert.equal(run.code, 2, `ferry ${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /^error: /);
      assert.match(run.stderr, /usage: ferry/);
      assert.equal(run.stdout, '');
    }
  });

  test('help and --help print the usage and exit 0', async (t) => {
    const { cli } = await world(t);
    for (const args of [['help'], ['--help'], ['promote', '--help']]) {
      const run = await cli(args);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /ferry promote PIPELINE STAGE FREIGHT \[--wait\]/);
    }
  });
});
