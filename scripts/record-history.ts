// Records real workflow histories for the replay test (test/workflows/replay.test.ts): runs a promotion with an
// approval gate and an Argo CD stage on a real dev server, with the real worker, real git and the Argo CD stand-in,
// and writes the histories of the pipeline and promotion workflows to test/histories/<name>.json.
//
//   npm run history:record -- <name>     (e.g. v1; never overwrite a recorded history: add a new one)
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  const files = ['pipeline', 'promotion'].map((kind) => join(outDir, `${name}-${kind}.json`));
  if (files.some(existsSync)) throw new Error(`histories named "${name}" exist already; pick a new name`);

  const dir = mkdtempSync(join(tmpdir(), 'ferry-record-'));
  const env = await createTemporalTestEnv();
  const token = makeToken('ferry-recorder');
  const argocd = await startArgoCdStandIn({ tokens: { [token]: true } });
  try {
    const repo = createExampleRepo(join(dir, 'gitops.git'));
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
      secrets: createSecretResolver({ env: { FERRY_SECRET_ARGOCD_TOKEN: token } }),
      argoPollIntervalMs: 100,
    });
    const ferry = FerryClient.fromClient(env.client);
    await worker.runUntil(async () => {
      const loaded = validatePipeline(
        oneArgoCdStagePipeline({
          repoUrl: repo.url,
          argocdUrl: argocd.url,
          stage: 'prod',
          approval: { required: 1, approvers: ['alice'] },
        }),
      );
      if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
      await ferry.applyPipeline(loaded.pipeline);
      const { id: freight } = await ferry.addFreight('guestbook', { guestbook: '1.4.2' });
      const { id } = await ferry.promote('guestbook', 'prod', freight, 'carol');
      while ((await ferry.getPromotion(id)).phase !== 'AwaitingApproval') await new Promise((r) => setTimeout(r, 100));
      await ferry.approve(id, { user: 'alice', comment: 'recorded' });
      const done = await ferry.waitForPromotion(id, { timeoutMs: 60_000 });
      if (done.phase !== 'Succeeded') throw new Error(`promotion ended ${done.phase}: ${done.error}`);
      // Let the pipeline workflow process the promotion's "finished" signal before its history is taken.
      await new Promise((r) => setTimeout(r, 1000));
      mkdirSync(outDir, { recursive: true });
      const pipelineHistory = await env.client.workflow.getHandle('pipeline/guestbook').fetchHistory();
      const promotionHistory = await env.client.workflow.getHandle(id).fetchHistory();
      writeFileSync(files[0], `${historyToJSON(pipelineHistory)}\n`);
      writeFileSync(files[1], `${historyToJSON(promotionHistory)}\n`);
    });
    process.stdout.write(`recorded ${files.join(', ')}\n`);
  } finally {
    await argocd.close();
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
