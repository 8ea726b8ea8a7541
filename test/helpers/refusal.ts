import assert from 'node:assert/strict';
import { FerryError } from '../../client/errors';

/** The FerryError a request was refused with; fails the test when it was not refused. */
export async function refusal(promise: Promise<unknown>): Promise<FerryError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof FerryError) return err;
    throw err;
  }
  assert.fail('expected the request to be refused');
}
