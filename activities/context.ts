// Activities also run as plain function calls (tests, scripts, the git benchmark). These use the Temporal activity
// context when there is one and do nothing otherwise: the one way Ferry's activities ask "am I in an activity?".
import { asyncLocalStorage, type Context } from '@temporalio/activity';

/** The context of the running activity; undefined in a plain call. */
export function activityContext(): Context | undefined {
  return asyncLocalStorage.getStore();
}

/** Heartbeats (which is how cancellation arrives) when running as an activity; a no-op in a plain call. */
export function heartbeatIfActivity(details: unknown): void {
  activityContext()?.heartbeat(details);
}

/**
 * Runs `fn` outside the calling activity's context: for work shared by several activities (one push for many
 * promotions), which must not be cancelled, or heartbeat, as the one activity that happened to start it.
 */
export function outsideActivity<T>(fn: () => T): T {
  return asyncLocalStorage.exit(fn);
}
