// Remembers the deliveries this API process has acted on, for the replay window, so a delivery sent twice (a
// redelivery, a retry, a captured request replayed) is acknowledged and not acted on again. Bounded: past
// `maxEntries` the oldest are forgotten early; that only weakens the replay check for them, because what a delivery
// does is idempotent (freight ids are content hashes; the pull-request signal is handled idempotently).
//
// A delivery that is being processed is remembered as a promise: a concurrent copy waits for it and is then a
// duplicate. One that failed is forgotten, so the sender's retry is acted on.

export interface DeliveryMemoryOptions {
  /** How long a delivery is remembered, in milliseconds. */
  ttlMs: number;
  /** At most this many are remembered (default 10 000). */
  maxEntries?: number;
  /** The clock (milliseconds since the epoch); tests move it. */
  now?: () => number;
}

export type DeliveryOutcome<T> = { duplicate: false; result: T } | { duplicate: true };

export interface DeliveryMemory {
  /** Runs `act` unless a delivery with this key was acted on (or is being acted on) within the window. */
  once<T>(key: string, act: () => Promise<T>): Promise<DeliveryOutcome<T>>;
  size(): number;
}

export function createDeliveryMemory(options: DeliveryMemoryOptions): DeliveryMemory {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  // Insertion order is expiry order (every entry lives ttlMs), so the oldest are at the front.
  const seen = new Map<string, { expires: number; settled: Promise<unknown> }>();

  const prune = (): void => {
    const t = now();
    for (const [key, entry] of seen) {
      if (entry.expires > t && seen.size <= maxEntries) break;
      seen.delete(key);
    }
  };

  return {
    async once(key, act) {
      prune();
      const known = seen.get(key);
      if (known) {
        await known.settled.catch(() => undefined);
        // Still there: the first copy succeeded (a failed one is forgotten before its promise settles).
        if (seen.has(key)) return { duplicate: true };
        return this.once(key, act);
      }
      const entry: { expires: number; settled: Promise<unknown> } = { expires: now() + options.ttlMs, settled: act() };
      // Forgotten inside the chain a waiting copy awaits, so by the time it looks, a failure is already forgotten.
      const settled = entry.settled.catch((err: unknown) => {
        if (seen.get(key) === entry) seen.delete(key);
        throw err;
      });
      entry.settled = settled;
      seen.set(key, entry);
      prune();
      return { duplicate: false, result: (await settled) as Awaited<ReturnType<typeof act>> };
    },
    size: () => seen.size,
  };
}
