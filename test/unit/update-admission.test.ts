// The typed client's admission of workflow updates: a few in flight per workflow, the rest wait their turn; updates
// Temporal turns away (too many in flight, aborted by continue-as-new) are retried; everything else passes through.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FerryError } from '../../client/errors';
import { createUpdateAdmission, isUpdateBackpressure } from '../../client/update-admission';

const tooMany = (): Error =>
  Object.assign(
    new Error('8 RESOURCE_EXHAUSTED: limit on number of concurrent in-flight updates has been reached (10)'),
    {
      code: 8,
    },
  );
const noSleep = async (): Promise<void> => undefined;

describe('update admission', () => {
  test('keeps at most perWorkflow updates of one workflow in flight, and others unaffected', async () => {
    const admission = createUpdateAdmission({ perWorkflow: 3 });
    let inFlight = 0;
    let most = 0;
    const work = async (): Promise<number> => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return 1;
    };
    const results = await Promise.all(Array.from({ length: 20 }, () => admission.run('pipeline/a', 'a', work)));
    assert.equal(results.length, 20);
    assert.equal(most, 3);
    // Another workflow is not queued behind the first.
    let started = false;
    const slow = Promise.all(
      Array.from({ length: 3 }, () => admission.run('pipeline/a', 'a', () => new Promise((r) => setTimeout(r, 50)))),
    );
    await admission.run('pipeline/b', 'b', async () => (started = true));
    assert.equal(started, true);
    await slow;
  });

  test('retries an update the server turned away until it is taken', async () => {
    const admission = createUpdateAdmission({ sleep: noSleep });
    let calls = 0;
    const result = await admission.run('pipeline/a', 'a', async () => {
      calls++;
      if (calls < 4) throw new Error('wrapped', { cause: tooMany() });
      return 'taken';
    });
    assert.equal(result, 'taken');
    assert.equal(calls, 4);
  });

  test('passes any other failure through at once', async () => {
    const admission = createUpdateAdmission({ sleep: noSleep });
    let calls = 0;
    await assert.rejects(
      admission.run('pipeline/a', 'a', async () => {
        calls++;
        throw new Error('freight must give a version for exactly the artifacts guestbook');
      }),
      /freight must give/,
    );
    assert.equal(calls, 1);
  });

  test('gives up with Unavailable (503) naming the workflow once the deadline passed', async () => {
    const admission = createUpdateAdmission({ deadlineMs: 30, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) });
    const refused = await admission
      .run('pipeline/a', 'pipeline "a"', async () => Promise.reject(tooMany()))
      .then(
        () => assert.fail('expected a refusal'),
        (err: unknown) => err,
      );
    assert.ok(refused instanceof FerryError);
    assert.equal(refused.code, 'Unavailable');
    assert.match(refused.message, /pipeline "a" is busy/);
  });

  test('recognises the server’s refusals and nothing else', () => {
    assert.equal(isUpdateBackpressure(tooMany()), true);
    assert.equal(isUpdateBackpressure(new Error('x', { cause: new Error('workflow update was aborted') })), true);
    assert.equal(isUpdateBackpressure(new Error('promotion is not awaiting approval')), false);
    assert.equal(
      isUpdateBackpressure(Object.assign(new Error('8 RESOURCE_EXHAUSTED: namespace rate limit'), { code: 8 })),
      false,
    );
  });
});
