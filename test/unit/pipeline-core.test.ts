// The pipeline's core without a server: the catalogue never drops freight in use, requests join the existing
// promotion, the stage lock hands the stage on in order, results make freight current and due onward.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pipeline } from '../../pipeline/schema';
import type { FreightEntry, PromotionRef } from '../../workflows/messages';
import {
  addFreight,
  autoPromotionsFor,
  catalogueRefusal,
  existingPromotion,
  isExactRunKnown,
  isKnownRun,
  isStageFree,
  MAX_FREIGHT,
  MAX_FREIGHT_KEPT,
  newPipelineState,
  nextProbeBatch,
  recordEnd,
  referencedFreight,
  releaseLock,
  requestLock,
  stageStateOf,
} from '../../workflows/pipeline-core';

const AT = '2026-01-01T00:00:00.000Z';

const spec = {
  apiVersion: 'ferry.dev/v1alpha1',
  kind: 'Pipeline',
  metadata: { name: 'guestbook' },
  spec: {
    repo: { url: 'file:///tmp/x.git', branch: 'main' },
    artifacts: [{ name: 'guestbook', image: 'registry.example.com/guestbook' }],
    stages: [
      { name: 'dev', after: [], promotion: 'auto', render: { strategy: 'branch', from: 'a', to: 'env/dev' } },
      { name: 'staging', after: ['dev'], promotion: 'auto', render: { strategy: 'branch', from: 'a', to: 'env/s' } },
      {
        name: 'prod',
        after: ['staging'],
        promotion: 'manual',
        approval: { required: 1, approvers: ['alice'] },
        render: { strategy: 'branch', from: 'a', to: 'env/prod' },
      },
    ],
  },
} as unknown as Pipeline;

const freight = (n: number): FreightEntry => ({
  id: n.toString(16).padStart(12, '0'),
  artifacts: { guestbook: `1.0.${n}` },
  createdAt: AT,
  verifiedIn: [],
});
const ref = (id: string, freightId: string, runId?: string): PromotionRef => ({
  id,
  freight: freightId,
  requestedBy: 'carol',
  requestedAt: AT,
  ...(runId ? { runId } : {}),
});

describe('freight catalogue', () => {
  it('drops the oldest unreferenced freight beyond the bound, never freight a promotion refers to', () => {
    const state = newPipelineState(spec, AT);
    const waiting = freight(0);
    state.freight.push(waiting);
    stageStateOf(state, 'prod').active.push(ref(`promotion/guestbook/prod/${waiting.id}`, waiting.id));
    for (let n = 1; n <= MAX_FREIGHT + 10; n++) addFreight(state, freight(n), referencedFreight(state));
    assert.ok(
      state.freight.some((f) => f.id === waiting.id),
      'the waiting promotion keeps its freight',
    );
    assert.equal(state.freight.length, MAX_FREIGHT + 1);
  });

  it('keeps freight about to be promoted (pending), and refuses new freight once all kept freight is in use', () => {
    const state = newPipelineState(spec, AT);
    const pending = freight(7);
    addFreight(state, pending, referencedFreight(state));
    for (let n = 100; n < 100 + MAX_FREIGHT + 5; n++)
      addFreight(state, freight(n), referencedFreight(state, [pending.id]));
    assert.ok(state.freight.some((f) => f.id === pending.id));

    const full = newPipelineState(spec, AT);
    for (let n = 0; n < MAX_FREIGHT_KEPT; n++) {
      const f = freight(n);
      full.freight.push(f);
      stageStateOf(full, 'prod').active.push(ref(`p/${n}`, f.id));
    }
    assert.match(
      catalogueRefusal(full, referencedFreight(full)) ?? '',
      /keeps at most 1000 freight .* all 1000 are in use/,
    );
    assert.equal(catalogueRefusal(newPipelineState(spec, AT), new Set()), undefined);
  });
});

describe('requests and auto-promotion', () => {
  it('joins the unfinished promotion or the one that made the freight current', () => {
    const state = newPipelineState(spec, AT);
    const dev = stageStateOf(state, 'dev');
    const f = freight(1);
    assert.equal(existingPromotion(dev, 'guestbook', f.id), undefined);
    dev.active.push(ref(`promotion/guestbook/dev/${f.id}`, f.id));
    assert.equal(existingPromotion(dev, 'guestbook', f.id), `promotion/guestbook/dev/${f.id}`);
    dev.active = [];
    dev.current = { freight: f.id, promotion: `promotion/guestbook/dev/${f.id}`, at: AT };
    assert.equal(existingPromotion(dev, 'guestbook', f.id), `promotion/guestbook/dev/${f.id}`);
  });

  it('auto-promotes new freight into auto stages without `after`, and onward once it succeeded upstream', () => {
    const f = freight(1);
    assert.deepEqual(autoPromotionsFor(spec, f), [{ stage: 'dev', freight: f.id }]);
    f.verifiedIn.push('dev');
    assert.deepEqual(autoPromotionsFor(spec, f), [{ stage: 'staging', freight: f.id }]);
    f.verifiedIn.push('staging');
    assert.deepEqual(autoPromotionsFor(spec, f), [], 'prod is manual');
  });
});

describe('stage lock', () => {
  it('grants a free stage, queues the rest in order, hands the stage on at each release', () => {
    const state = newPipelineState(spec, AT);
    const dev = stageStateOf(state, 'dev');
    assert.ok(isStageFree(dev));
    assert.equal(requestLock(dev, ref('a', '1', 'ra')), true);
    assert.equal(requestLock(dev, ref('b', '2', 'rb')), false);
    assert.equal(requestLock(dev, ref('c', '3', 'rc')), false);
    assert.equal(requestLock(dev, ref('b', '2', 'rb')), false, 'a repeated request');
    assert.deepEqual(
      dev.queue.map((q) => q.id),
      ['b', 'c'],
    );
    assert.equal(releaseLock(dev, 'a', 'other-run'), undefined, 'another run of a does not release it');
    assert.equal(releaseLock(dev, 'a', 'ra')?.id, 'b');
    assert.equal(releaseLock(dev, 'c', 'rc'), undefined, 'a queued one leaves the queue');
    assert.equal(releaseLock(dev, 'b', 'rb'), undefined);
    assert.ok(isStageFree(dev));
  });

  it('records a success: lock to the next, history with reason, freight current and verified', () => {
    const state = newPipelineState(spec, AT);
    const f = freight(1);
    state.freight.push(f);
    const dev = stageStateOf(state, 'dev');
    requestLock(dev, ref('a', f.id, 'ra'));
    requestLock(dev, ref('b', '2', 'rb'));
    const { next, verified } = recordEnd(state, {
      id: 'a',
      runId: 'ra',
      stage: 'dev',
      freight: f.id,
      phase: 'Succeeded',
      finishedAt: AT,
      commit: 'c0ffee',
    });
    assert.equal(next?.id, 'b');
    assert.equal(verified, f);
    assert.deepEqual(f.verifiedIn, ['dev']);
    assert.equal(dev.current?.freight, f.id);
    const failed = recordEnd(state, {
      id: 'b',
      runId: 'rb',
      stage: 'dev',
      freight: '2',
      phase: 'Failed',
      finishedAt: AT,
      error: 'terminated',
      reason: 'EndedOutside',
    });
    assert.deepEqual(failed, {});
    assert.deepEqual([dev.history[0].phase, dev.history[0].reason], ['Failed', 'EndedOutside']);
    assert.equal(dev.current?.freight, f.id, 'a failure does not change the current freight');
  });
});

describe('a run that ended, beside a newer run of the same promotion', () => {
  it('is not taken for the newer run that is still starting (no run id yet)', () => {
    const state = newPipelineState(spec, AT);
    const dev = stageStateOf(state, 'dev');
    // The forced new run of promotion `a` is tracked, and holds the free stage, before its start returns a run id.
    const starting: PromotionRef = { id: 'a', freight: '1', requestedBy: 'carol', requestedAt: AT };
    dev.active.push(starting);
    dev.running = starting;
    // The loose match (a ref without a run id matches any run) says the old run `ra` is still there...
    assert.equal(isKnownRun(dev, 'a', 'ra'), true);
    // ...the exact one does not, so the old run's end does not release the new run's stage.
    assert.equal(isExactRunKnown(dev, 'a', 'ra'), false);
    starting.runId = 'rb';
    assert.equal(isExactRunKnown(dev, 'a', 'rb'), true);
    assert.equal(isExactRunKnown(dev, 'a', 'ra'), false);
  });
});

describe('probing lock holders of earlier runs', () => {
  it('probes a few holders a look, in turn, and every one of 20 within three looks', () => {
    const holders = Array.from({ length: 20 }, (_, i) => `h${i}`);
    const seen = new Set<string>();
    let offset = 0;
    for (let look = 0; look < 3; look++) {
      const next = nextProbeBatch(holders, offset, 8);
      assert.equal(next.batch.length, 8);
      next.batch.forEach((h) => seen.add(h));
      offset = next.offset;
    }
    assert.equal(seen.size, 20);
  });

  it('probes all holders at once when they are few', () => {
    assert.deepEqual(nextProbeBatch(['a', 'b'], 5, 8), { batch: ['a', 'b'], offset: 0 });
  });
});
