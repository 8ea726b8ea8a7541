// Determinism guard: every recorded history under test/histories/ must replay against today's workflow code.
// A change that would break promotions already running (a new activity, a reordered step) fails here; put such
// changes behind `patched()` and record a new history with `npm run history:record -- <name>`.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { PROJECT_ROOT } from '../../dev/temporal';
import { WORKFLOWS_PATH } from '../../worker/create-worker';

const dir = join(PROJECT_ROOT, 'test', 'histories');
const histories = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

/** The stage strategy of a recorded promotion: its start event's input (payloads are base64 JSON). */
function strategyOf(history: unknown): string | undefined {
  const events = (history as { events?: Array<Record<string, any>> }).events ?? [];
  const data = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data as string | undefined;
  const input = data ? JSON.parse(Buffer.from(data, 'base64').toString('utf8')) : undefined;
  return input?.stage?.render?.strategy;
}

describe('recorded workflow histories replay against the current workflow code', () => {
  // One bundle of today's workflow code for every history (bundling is most of a replay's time).
  let workflowBundle: WorkflowBundleWithSourceMap;
  before(async () => {
    workflowBundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
  });

  it('has recorded histories of both workflow types', () => {
    assert.ok(histories.some((f) => f.endsWith('-pipeline.json')));
    assert.ok(histories.some((f) => f.endsWith('-promotion.json')));
  });

  for (const file of histories) {
    it(`replays ${file}`, async () => {
      const json: unknown = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      const history = historyFromJSON(json);
      // The history is a real one: it ran the steps the replay is meant to guard.
      const text = JSON.stringify(json);
      if (file.endsWith('-promotion.json')) {
        for (const activity of ['renderAndPush', 'syncArgoApp', 'waitArgoAppHealthy'])
          assert.ok(text.includes(activity), `${file} ran ${activity}`);
        // From v4 on, a promotion checks before it writes.
        if (file >= 'v4') assert.ok(text.includes('preflightPromotion'), `${file} ran preflightPromotion`);
      }
      // From v8 on: a promotion through a pull request that was merged, and one into a directory on a trunk.
      if (file.endsWith('-pull-request-promotion.json')) {
        for (const step of ['openPullRequest', 'waitForPullRequest'])
          assert.ok(text.includes(step), `${file} ran ${step}`);
        assert.equal(strategyOf(json), 'pull-request', file);
      }
      if (file.endsWith('-directory-promotion.json')) assert.equal(strategyOf(json), 'directory', file);
      await Worker.runReplayHistory({ workflowBundle, replayName: file }, history);
    });
  }
});
