// Records real workflow histories for the replay test (test/workflows/replay.test.ts): on a real dev server, with
// the real worker, real git and the Argo CD stand-in, promotes freight into a free stage without approval (dev) and
// then into a stage with an approval gate and two gates after health, a callback gate and an http gate (prod), both
// with Argo CD and a webhook subscriber for every event, and writes the histories of the pipeline and both
// promotion workflows to test/histories/<name>-{pipeline,promotion,free-stage-promotion}.json.
//
//   npm run history:record -- <name>     (e.g. v1; never overwrite a recorded history: add a new one)
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { FerryClient } from '../client/ferry-client';
import { createSecretResolver } from '../activities/secrets';
import { validatePipeline } from '../pipeline/load';
import { createExampleRepo } from '../dev/example';
import { PROJECT_ROOT } from '../dev/temporal';
import { oneArgoCdStagePipeline } from '../test/helpers/fixtures';
import { makeToken, startArgoCdStandIn } from '../test/standin/argocd/server';
import { createTemporalTestEnv } from '../test/helpers/temporal';
import { createFerryWorker } from '../worker/create-worker';

async function main(): Promise<void> {
  const name = process.argv[2];
  if (!name || !/^[a-z0-9-]+$/.test(name)) throw new Error('usage: npm run history:record -- <name>');
  const outDir = join(PROJECT_ROOT, 'test', 'histories');
  const files = ['pipeline', 'promotion', 'free-stage-promotion'].map((kind) => join(outDir, `${name}-${kind}.json`));
  if (files.some(existsSync)) throw new Error(`histories named "${name}" exist already; pick a new name`);

  const dir = mkdtempSync(join(tmpdir(), 'ferry-record-'));
  const env = await createTemporalTestEnv();
  const token = makeToken('ferry-recorder');
  const argocd = await startArgoCdStandIn({ tokens: { [token]: true } });
  // What the http gate polls and the subscriber the events go to: both answer 200 to everything.
  const endpoint = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'));
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  const endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
  try {
    const repo = createExampleRepo(join(dir, 'gitops.git'));
    await argocd.control.addApp({
      name: 'guestbook-dev',
      project: 'default',
      repoURL: repo.url,
      path: '.',
      targetRevision: 'env/dev',
      deployedRevision: null,
    });
    await argocd.control.addApp({
      name: 'guestbook-prod',
      project: 'default',
      repoURL: repo.url,
      path: '.',
      targetRevision: 'env/prod',
      deployedRevision: null,
    });
    const worker = await createFerryWorker({
      connection: env.nativeConnection,
      taskQueue: 'ferry',
      workspaceRoot: join(dir, 'workspaces'),
      // The test repositories are file:// remotes, which a worker uses only when its operator allows it.
      allowFileRepos: true,
      secrets: createSecretResolver({
        env: { FERRY_SECRET_ARGOCD_TOKEN: token, FERRY_SECRET_EVENTS_TOKEN: 'recorder-event-secret' },
      }),
      argoPollIntervalMs: 100,
    });
    const ferry = FerryClient.fromClient(env.client);
    await worker.runUntil(async () => {
      const spec = oneArgoCdStagePipeline({
        repoUrl: repo.url,
        argocdUrl: argocd.url,
        stage: 'prod',
        approval: { required: 1, approvers: ['alice'] },
      });
      const dev = oneArgoCdStagePipeline({ repoUrl: repo.url, argocdUrl: argocd.url, stage: 'dev' }).spec.stages[0];
      const loaded = validatePipeline({
        ...spec,
        spec: {
          ...spec.spec,
          notify: [{ name: 'recorder', target: { type: 'webhook', url: `${endpointUrl}/events` }, secret: 'events' }],
          stages: [
            dev,
            {
              ...spec.spec.stages[0],
              after: ['dev'],
              gates: [
                { name: 'e2e', callback: { timeout: '10m' } },
                { name: 'smoke', http: { url: `${endpointUrl}/health`, interval: '100ms', successes: 2 } },
              ],
            },
          ],
        },
      });
      if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
      await ferry.applyPipeline(loaded.pipeline);
      const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
      const { id: devId } = await ferry.promote('guestbook', 'dev', freight, 'carol');
      const devDone = await ferry.waitForPromotion(devId, { timeoutMs: 60_000 });
      if (devDone.phase !== 'Succeeded') throw new Error(`dev promotion ended ${devDone.phase}: ${devDone.error}`);
      const { id } = await ferry.promote('guestbook', 'prod', freight, 'carol');
      while ((await ferry.getPromotion(id)).phase !== 'AwaitingApproval') await new Promise((r) => setTimeout(r, 100));
      await ferry.approve(id, { user: 'alice', comment: 'recorded' });
      for (;;) {
        const gate = (await ferry.getPromotion(id)).gates?.find((g) => g.name === 'e2e');
        if (gate?.phase === 'Waiting') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await ferry.decideGate(await ferry.waitingGate(id, 'e2e'), {
        result: 'pass',
        reason: 'recorded',
        by: 'recorder',
      });
      const done = await ferry.waitForPromotion(id, { timeoutMs: 60_000 });
      if (done.phase !== 'Succeeded') throw new Error(`promotion ended ${done.phase}: ${done.error}`);
      // Let the pipeline workflow process the promotion's "finished" signal before its history is taken.
      await new Promise((r) => setTimeout(r, 1000));
      mkdirSync(outDir, { recursive: true });
      const pipelineHistory = await env.client.workflow.getHandle('pipeline/guestbook').fetchHistory();
      const promotionHistory = await env.client.workflow.getHandle(id).fetchHistory();
      const devHistory = await env.client.workflow.getHandle(devId).fetchHistory();
      writeFileSync(files[0], `${historyToJSON(pipelineHistory)}\n`);
      writeFileSync(files[1], `${historyToJSON(promotionHistory)}\n`);
      writeFileSync(files[2], `${historyToJSON(devHistory)}\n`);
    });
    process.stdout.write(`recorded ${files.join(', ')}\n`);
  } finally {
    await argocd.close();
    await new Promise<void>((resolve) => endpoint.close(() => resolve()));
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
