// A release train that is itself a Temporal workflow, as a `temporal` subscriber would run it: it records every
// Ferry event it is signalled and finishes when the promotion it waits for has succeeded. Bundled by a test worker.
import { condition, defineSignal, setHandler } from '@temporalio/workflow';
import type { FerryEvent } from '../../workflows/events';

export const ferryEventSignal = defineSignal<[FerryEvent]>('ferry.event');

/** Waits until Ferry reports `dev.ferry.promotion.succeeded` for `subject` (pipeline/stage); returns that event. */
export async function releaseTrainWorkflow(subject: string): Promise<{ succeeded: FerryEvent; received: string[] }> {
  const received: FerryEvent[] = [];
  setHandler(ferryEventSignal, (event) => {
    received.push(event);
  });
  const succeeded = (): FerryEvent | undefined =>
    received.find((e) => e.type === 'dev.ferry.promotion.succeeded' && e.subject === subject);
  await condition(() => succeeded() !== undefined);
  return { succeeded: succeeded() as FerryEvent, received: received.map((e) => e.type) };
}
