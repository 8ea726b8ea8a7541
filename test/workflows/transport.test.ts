// Promotions over ssh:// end to end on the real Temporal dev server: the real worker, resolving a named credential
// (a key and the host's known_hosts line) from its environment, promotes into a repository served by Debian's sshd
// on loopback. With a key the server does not accept, the promotion fails at its first attempt with reason
// GitAuthFailed, and neither its status nor any workflow history holds the key.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createSecretResolver } from '../../activities/secrets';
import { FerryClient } from '../../client/ferry-client';
import { createExampleRepo, examplePipelineYaml } from '../../dev/example';
import { parsePipelineText } from '../../pipeline/load';
import type { Pipeline } from '../../pipeline/schema';
import { createFerryWorker } from '../../worker/create-worker';
import { until } from '../helpers/processes';
import { createTemporalTestEnv } from '../helpers/temporal';
import { generateKeyPair, startSshd, type KeyPair, type Sshd } from '../helpers/transport-servers';

const TASK_QUEUE = 'ferry-transport-tests';

/** Every string in a fetched history, payload bytes decoded: what someone reading the history could see. */
function historyText(value: unknown, out: string[] = []): string[] {
  if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) historyText(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) historyText(v, out);
  return out;
}

describe('promotions over ssh:// (real dev server, real worker, Debian sshd)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let ferry: FerryClient;
  let dir: string;
  let sshd: Sshd;
  let remote: string;
  /** A second repository, since two pipelines may not write the same branches. */
  let strangerRemote: string;
  let ferryKey: KeyPair;
  let strangerKey: KeyPair;

  const pipeline = (name: string, repoPath: string, credentials: string): Pipeline => {
    const loaded = parsePipelineText(examplePipelineYaml(sshd.repoUrl(repoPath), ['alice', 'bob']));
    if (!loaded.ok) throw new Error(loaded.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
    const spec = loaded.pipeline;
    return {
      ...spec,
      metadata: { ...spec.metadata, name },
      spec: { ...spec.spec, repo: { ...spec.spec.repo, credentials } },
    };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-wf-transport-'));
    sshd = await startSshd(join(dir, 'sshd'));
    remote = createExampleRepo(join(dir, 'gitops.git')).path;
    strangerRemote = createExampleRepo(join(dir, 'stranger', 'gitops.git')).path;
    ferryKey = generateKeyPair(join(dir, 'keys'), 'ferry');
    strangerKey = generateKeyPair(join(dir, 'keys'), 'stranger');
    sshd.authorize(ferryKey.publicKey);
    env = await createTemporalTestEnv();
    worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUE,
      workspaceRoot: join(dir, 'workspaces'),
      // As an operator sets them: FERRY_SECRET_<NAME>_SSH_KEY and _KNOWN_HOSTS in the worker's environment.
      secrets: createSecretResolver({
        env: {
          FERRY_SECRET_GITOPS_SSH_KEY: ferryKey.privateKey,
          FERRY_SECRET_GITOPS_KNOWN_HOSTS: sshd.knownHostsLine,
          FERRY_SECRET_STRANGER_SSH_KEY: strangerKey.privateKey,
          FERRY_SECRET_STRANGER_KNOWN_HOSTS: sshd.knownHostsLine,
        },
      }),
    });
    running = worker.run();
    ferry = FerryClient.fromClient(env.client, TASK_QUEUE);
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
    await sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('auto-promotes new freight into dev over ssh with the credential’s key: the commit is on the server', async () => {
    await ferry.applyPipeline(pipeline('guestbook', remote, 'gitops'));
    const { id } = await ferry.addFreight('guestbook', { guestbook: '2.0.0' });
    const done = await until('dev promotion to finish', async () => {
      const s = await ferry.getPromotion(`promotion/guestbook/dev/${id}`);
      return ['Succeeded', 'Failed'].includes(s.phase) ? s : undefined;
    });
    assert.equal(done.phase, 'Succeeded', done.error);
    const onServer = (...args: string[]) =>
      execFileSync('git', ['--git-dir', remote, ...args], { encoding: 'utf8' }).trim();
    assert.equal(onServer('rev-parse', 'env/dev'), done.commit);
    assert.match(onServer('show', 'env/dev:deployment.yaml'), /guestbook:2\.0\.0/);
    assert.match(sshd.log(), /Accepted publickey for \S+ from 127\.0\.0\.1/);
  });

  it('a key the server refuses fails the promotion at its first attempt with GitAuthFailed; no key in status or history', async () => {
    const before = onServerRefs();
    await ferry.applyPipeline(pipeline('guestbook-stranger', strangerRemote, 'stranger'));
    const { id } = await ferry.addFreight('guestbook-stranger', { guestbook: '2.0.1' });
    const promotionId = `promotion/guestbook-stranger/dev/${id}`;
    const done = await until('dev promotion to fail', async () => {
      const s = await ferry.getPromotion(promotionId);
      return ['Succeeded', 'Failed'].includes(s.phase) ? s : undefined;
    });
    assert.equal(done.phase, 'Failed');
    assert.equal(done.reason, 'GitAuthFailed', done.error);
    assert.match(
      done.error ?? '',
      new RegExp(
        `ssh://127\\.0\\.0\\.1:${sshd.port}\\S*gitops\\.git: authentication failed: the server refused the SSH key`,
      ),
    );
    assert.match(done.error ?? '', /check the ssh_key of credential "stranger" \(FERRY_SECRET_STRANGER_SSH_KEY\)/);
    assert.deepEqual(onServerRefs(), before, 'nothing was written');

    const history = await env.client.workflow.getHandle(promotionId).fetchHistory();
    const events = history.events ?? [];
    // Non-retryable: the failing activity ran once, and failed once.
    const started = events.filter((e) => e.activityTaskStartedEventAttributes);
    assert.ok(started.length > 0);
    assert.ok(
      started.every((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) === 1),
      'no retry',
    );
    const failed = events.filter((e) => e.activityTaskFailedEventAttributes);
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo?.nonRetryable, true);

    const texts = [JSON.stringify(done), JSON.stringify(await ferry.getPipeline('guestbook-stranger'))];
    for await (const wf of env.client.workflow.list({ query: 'FerryPipeline = "guestbook-stranger"' })) {
      texts.push(historyText(await env.client.workflow.getHandle(wf.workflowId).fetchHistory()).join('\n'));
    }
    assert.ok(texts.length >= 4, 'the status, the pipeline and at least the pipeline and promotion histories');
    for (const key of [strangerKey.privateKey, ferryKey.privateKey]) {
      const forms = [
        key,
        Buffer.from(key).toString('base64'),
        ...key.split('\n').filter((l) => l.length >= 8 && !l.startsWith('-----')),
      ];
      for (const text of texts)
        for (const form of forms) assert.ok(!text.includes(form), 'no key, or line of one, in status or history');
    }
  });

  function onServerRefs(): string {
    return execFileSync('git', ['--git-dir', strangerRemote, 'for-each-ref'], { encoding: 'utf8' });
  }
});
