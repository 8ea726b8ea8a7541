// Argo CD activities: ask Argo CD to sync an app to the head of the stage branch, then wait until it is Synced and
// Healthy at exactly that commit. Failures are ApplicationFailures whose message starts with
// the app and server and says what to do; the ones a retry cannot fix are non-retryable.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { isDeepStrictEqual } from 'node:util';
import type { ArgoCdSpec, Repo } from '../../pipeline/schema';
import { activityContext, heartbeatIfActivity } from '../context';
import type { SecretResolver } from '../secrets';
import type { SyncArgoAppInput, SyncArgoAppResult, WaitArgoAppHealthyInput, WaitArgoAppHealthyResult } from '../types';
import {
  ArgoCdError,
  createArgoCdClient,
  type AppRef,
  type Application,
  type ApplicationSource,
  type ArgoCdClient,
  type Operation,
} from './client';
import { pause } from '../pause';

/** operation.info entry that marks an operation as started by a Ferry promotion. */
export const PROMOTION_INFO = 'ferry.dev/promotion';

export const ArgoCdFailureType = {
  Unauthorized: 'ArgoCdUnauthorized',
  Forbidden: 'ArgoCdForbidden',
  NotFound: 'ArgoCdNotFound',
  /** A 4xx about the request, or an app that does not track the stage branch. */
  Invalid: 'ArgoCdInvalid',
  /** 5xx, timeouts, network errors: retryable. */
  Unavailable: 'ArgoCdUnavailable',
  /** Someone else's operation kept running past operationWaitTimeoutMs: retryable. */
  OperationInProgress: 'ArgoCdOperationInProgress',
  SyncFailed: 'ArgoCdSyncFailed',
  WrongRevision: 'ArgoCdWrongRevision',
  Degraded: 'ArgoCdDegraded',
  /** Missing or Unknown health, or error conditions, for longer than unhealthyGraceMs. */
  Unhealthy: 'ArgoCdUnhealthy',
  Timeout: 'ArgoCdTimeout',
} as const;

export interface ArgoCdActivitiesOptions {
  secrets: SecretResolver;
  /** How often the waits read the app (default 3 s). */
  pollIntervalMs?: number;
  /** Timeout of each request, refreshes included (default 8 s); keep it below the activities' heartbeat timeout. */
  requestTimeoutMs?: number;
  /**
   * How long a Degraded app may stay Degraded before failing, when nothing better was seen yet, for stages whose
   * spec has no argocd.degradedGrace (default 30 s, the schema's default).
   */
  degradedGraceMs?: number;
  /** How long Missing/Unknown health or error conditions are tolerated, without argocd.unhealthyGrace (default 60 s). */
  unhealthyGraceMs?: number;
  /** How long syncArgoApp waits for someone else's operation before giving up for this attempt (default 2 min). */
  operationWaitTimeoutMs?: number;
  /**
   * Whether `candidate` contains `commit` on `repo`'s branch (git's merge-base --is-ancestor, after a fetch): for
   * stages that share their branch, where Argo CD may already be at a later commit. Without it, only the exact
   * commit counts.
   */
  containsCommit?: (check: { repo: Repo; commit: string; candidate: string }) => Promise<boolean>;
}

/**
 * A stage's grace setting (`30s`, `2m`) in milliseconds; `fallback` when the spec predates the setting (a promotion
 * started by an older Ferry) or the text is not a duration.
 */
export function graceMs(text: string | undefined, fallback: number): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text ?? '');
  if (!match) return fallback;
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

/** The last heartbeat of the previous attempt, when this is a retry. */
function previousHeartbeat(): { startedAt?: unknown } | undefined {
  const details: unknown = activityContext()?.info.heartbeatDetails;
  return typeof details === 'object' && details !== null ? details : undefined;
}

// ---- reading an Application -------------------------------------------------------------------------------------

/** Like Argo CD's NormalizeGitURL: case, surrounding space, trailing slash and `.git` do not matter. */
export function normalizeRepoUrl(url: string): string {
  return url
    .trim()
    .toLowerCase()
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .replace(/\/+$/, '');
}

function sourcesOf(app: Application): { sources: ApplicationSource[]; multi: boolean } {
  const multi = (app.spec.sources?.length ?? 0) > 0;
  return { sources: multi ? (app.spec.sources ?? []) : app.spec.source ? [app.spec.source] : [], multi };
}

function isAutomated(app: Application): boolean {
  const automated = app.spec.syncPolicy?.automated;
  return automated !== undefined && automated !== null && automated.enabled !== false;
}

function carriesTag(operation: Operation | undefined, tag: string): boolean {
  return operation?.info?.some((i) => i.name === PROMOTION_INFO && i.value === tag) ?? false;
}

/** The app's requested or last operation is this promotion's. */
function taggedFor(app: Application, tag: string): boolean {
  return carriesTag(app.operation, tag) || carriesTag(app.status?.operationState?.operation, tag);
}

function short(revision: string | undefined): string {
  return revision ? revision.slice(0, 12) : '(none)';
}

function seconds(time: string | undefined): number | undefined {
  if (!time) return undefined;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  const minutes = Math.floor(ms / 60_000);
  const rest = Math.round((ms % 60_000) / 1000);
  return rest > 0 ? `${minutes}m${rest}s` : `${minutes}m`;
}

/**
 * The index of the source that tracks the stage branch of the GitOps repository, or a message saying what the app
 * tracks and what to set.
 */
export function trackedSourceIndex(app: Application, repoUrl: string, branch: string): number | string {
  const { sources, multi } = sourcesOf(app);
  const field = (i: number): string => (multi ? `spec.sources[${i}]` : 'spec.source');
  const wanted = normalizeRepoUrl(repoUrl);
  const sameRepo = sources.map((s, i) => ({ s, i })).filter(({ s }) => normalizeRepoUrl(s.repoURL) === wanted);
  const tracking = sameRepo.find(({ s }) => s.targetRevision === branch || s.targetRevision === `refs/heads/${branch}`);
  if (tracking) return tracking.i;
  if (sameRepo.length > 0) {
    const { s, i } = sameRepo[0];
    return (
      `tracks ${s.repoURL} at targetRevision "${s.targetRevision || 'HEAD'}", not the stage branch "${branch}": ` +
      `set ${field(i)}.targetRevision to "${branch}"`
    );
  }
  const tracked = sources.map((s) => `${s.repoURL}@${s.targetRevision || 'HEAD'}`).join(', ') || 'no source';
  return (
    `tracks ${tracked}, not ${repoUrl}: set ${field(0)}.repoURL to "${repoUrl}" and ${field(0)}.targetRevision ` +
    `to "${branch}" (the stage branch Ferry writes)`
  );
}

function revisionAt(
  revision: string | undefined,
  revisions: string[] | undefined,
  index: number,
  multi: boolean,
): string | undefined {
  return multi ? revisions?.[index] : revision;
}

// ---- the assessment: Synced and Healthy at the revision ---------------------------------------------------

export interface Expectation {
  revision: string;
  /**
   * Later commits of the tracked branch known to contain `revision`. A directory stage shares its branch with
   * others: Argo CD may already be at a commit after ours, which deploys ours too.
   */
  containing?: ReadonlySet<string>;
  tag: string;
  /** Index of the source that tracks the stage branch. */
  sourceIndex: number;
  degradedGraceMs: number;
  unhealthyGraceMs: number;
}

/** What the wait remembers between polls. */
export interface WaitMemory {
  /** Progressing/Suspended seen at the revision after freshness: a later Degraded is a regression, fail at once. */
  sawProgress: boolean;
  degradedSince?: number;
  unhealthySince?: number;
}

export type Assessment =
  | { verdict: 'healthy' }
  | { verdict: 'wait'; state: string; refresh: boolean }
  | { verdict: 'fail'; type: string; message: string; collectResourceReasons?: boolean };

/**
 * Health messages Kubernetes and Argo CD give for a rollout that will not recover by waiting: a Degraded app with one
 * of these fails at once instead of after the Degraded grace period.
 */
export const TERMINAL_HEALTH_REASON =
  /exceeded its progress deadline|ProgressDeadlineExceeded|ImagePullBackOff|ErrImagePull|InvalidImageName|CrashLoopBackOff|CreateContainerConfigError/;

/** Application conditions that no reconcile fixes (the app's own spec is wrong): fail without the grace period. */
export const TERMINAL_CONDITIONS: ReadonlySet<string> = new Set(['InvalidSpecError']);

export function assessApplication(app: Application, expect: Expectation, memory: WaitMemory, now: number): Assessment {
  const status = app.status ?? {};
  const operationState = status.operationState;
  const { sources, multi } = sourcesOf(app);
  const automated = isAutomated(app);
  const desired = expect.revision;
  const deploysOurs = (revision: string | undefined): boolean =>
    revision !== undefined && (revision === desired || expect.containing?.has(revision) === true);

  // 1. An operation requested or in flight (ours or not): nothing below is settled yet.
  if (app.operation) {
    const by = carriesTag(app.operation, expect.tag)
      ? 'ours'
      : app.operation.initiatedBy?.automated
        ? 'automated'
        : `by ${app.operation.initiatedBy?.username ?? 'someone else'}`;
    const phase = operationState?.phase ?? 'requested';
    return {
      verdict: 'wait',
      state: `operation (${by}) ${phase}${operationState?.message ? `: ${operationState.message}` : ''}`,
      refresh: false,
    };
  }

  // 2. Correlate the last operation: our tag, or, with auto-sync, the revision it synced.
  const syncedRevision = revisionAt(
    operationState?.syncResult?.revision,
    operationState?.syncResult?.revisions,
    expect.sourceIndex,
    multi,
  );
  const correlated =
    operationState !== undefined &&
    (carriesTag(operationState.operation, expect.tag) || (automated && deploysOurs(syncedRevision)));
  const sync = status.sync ?? {};
  const comparedRevision = revisionAt(sync.revision, sync.revisions, expect.sourceIndex, multi);

  if (correlated) {
    // 3. Done = no .operation (checked above) and a completed phase. Running with finishedAt is a pending retry.
    const phase = operationState.phase;
    if (phase === 'Failed' || phase === 'Error') {
      const failed = (operationState.syncResult?.resources ?? [])
        .filter((r) => r.status === 'SyncFailed' || r.hookPhase === 'Failed' || r.hookPhase === 'Error')
        .map((r) => `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}: ${r.message ?? r.status ?? 'failed'}`);
      return {
        verdict: 'fail',
        type: ArgoCdFailureType.SyncFailed,
        message: `sync operation ${phase}: ${operationState.message ?? '(no message)'}${failed.length > 0 ? `; ${failed.join('; ')}` : ''}`,
      };
    }
    if (phase !== 'Succeeded') {
      const retrying = operationState.finishedAt ? ' (retry pending)' : '';
      return {
        verdict: 'wait',
        state: `operation ${phase}${retrying}${operationState.message ? `: ${operationState.message}` : ''}`,
        refresh: false,
      };
    }
    if (syncedRevision !== undefined && !deploysOurs(syncedRevision)) {
      return {
        verdict: 'fail',
        type: ArgoCdFailureType.WrongRevision,
        message: `synced ${syncedRevision}, expected ${desired}: the stage branch moved before Argo CD resolved it`,
      };
    }
  } else if (!(sync.status === 'Synced' && deploysOurs(comparedRevision))) {
    // No operation of ours (auto-sync not started yet, or none needed): wait for Argo CD to get there.
    const waitingFor = automated
      ? `the automated sync to ${short(desired)}`
      : `an operation tagged ${PROMOTION_INFO}=${expect.tag}`;
    return {
      verdict: 'wait',
      state: `waiting for ${waitingFor}; sync ${sync.status ?? 'Unknown'} at ${short(comparedRevision)}`,
      refresh: true,
    };
  }

  // 4. Fresh status: reconciled no earlier than the operation finished (second precision) and against this spec.
  const reconciledAt = seconds(status.reconciledAt);
  const finishedAt = seconds(operationState?.finishedAt);
  if (finishedAt !== undefined && (reconciledAt === undefined || reconciledAt < finishedAt)) {
    return {
      verdict: 'wait',
      state: `status not reconciled since the operation finished at ${operationState?.finishedAt}`,
      refresh: true,
    };
  }
  const compared = multi ? sync.comparedTo?.sources : sync.comparedTo?.source ? [sync.comparedTo.source] : undefined;
  if (!isDeepStrictEqual(compared, sources)) {
    return { verdict: 'wait', state: 'status compared against an older spec', refresh: true };
  }

  const health = status.health?.status ?? '';
  const errorConditions = (status.conditions ?? []).filter((c) => c.type.endsWith('Error'));
  const unhealthy = (state: string, why: string): Assessment => {
    memory.degradedSince = undefined;
    memory.unhealthySince ??= now;
    if (now - memory.unhealthySince >= expect.unhealthyGraceMs) {
      return {
        verdict: 'fail',
        type: ArgoCdFailureType.Unhealthy,
        message: `${why} for more than ${formatDuration(expect.unhealthyGraceMs)}`,
      };
    }
    return { verdict: 'wait', state, refresh: false };
  };
  if (errorConditions.length > 0) {
    const text = errorConditions.map((c) => `${c.type}: ${c.message ?? ''}`).join('; ');
    if (errorConditions.some((c) => TERMINAL_CONDITIONS.has(c.type))) {
      return { verdict: 'fail', type: ArgoCdFailureType.Unhealthy, message: text };
    }
    return unhealthy(`sync ${sync.status ?? 'Unknown'}, ${text}`, text);
  }

  // 5. At the revision: compares against the desired commit and is Synced.
  if (!deploysOurs(comparedRevision) || sync.status !== 'Synced') {
    // Same revision but OutOfSync: the reconcile may predate the deploy within the same second; ask for another.
    return {
      verdict: 'wait',
      state: `sync ${sync.status ?? 'Unknown'} at ${short(comparedRevision)}, health ${health || 'none'}`,
      refresh: deploysOurs(comparedRevision),
    };
  }

  // 6. Health.
  const progress = (status.resources ?? [])
    .filter((r) => r.health?.message && r.health.status !== 'Healthy')
    .map((r) => `${r.kind} ${r.name}: ${r.health?.message}`);
  const detail = progress.length > 0 ? ` (${progress.join('; ')})` : '';
  switch (health) {
    case 'Healthy':
      return { verdict: 'healthy' };
    case 'Progressing':
    case 'Suspended':
    case '':
      memory.sawProgress = true;
      memory.degradedSince = undefined;
      memory.unhealthySince = undefined;
      return { verdict: 'wait', state: `Synced, ${health || 'no health yet'}${detail}`, refresh: false };
    case 'Degraded': {
      memory.unhealthySince = undefined;
      memory.degradedSince ??= now;
      const terminal = [
        status.health?.message,
        ...(status.resources ?? []).filter((r) => r.health?.status === 'Degraded').map((r) => r.health?.message),
      ].some((message) => message !== undefined && TERMINAL_HEALTH_REASON.test(message));
      if (terminal || memory.sawProgress || now - memory.degradedSince >= expect.degradedGraceMs) {
        return {
          verdict: 'fail',
          type: ArgoCdFailureType.Degraded,
          message: `Degraded at ${desired}`,
          collectResourceReasons: true,
        };
      }
      return { verdict: 'wait', state: `Synced, Degraded${detail} (within the grace period)`, refresh: false };
    }
    default:
      return unhealthy(`Synced, ${health}${detail}`, `health ${health} at ${desired}`);
  }
}

/** Why resources are unhealthy: conditions, then per-resource health from the app, else from the resource tree. */
async function resourceReasons(client: ArgoCdClient, ref: AppRef, app: Application): Promise<string[]> {
  const conditions = (app.status?.conditions ?? [])
    .filter((c) => c.type.endsWith('Error') && c.message)
    .map((c) => `${c.type}: ${c.message}`);
  const bad = (h: { status?: string; message?: string } | undefined): boolean =>
    h?.status === 'Degraded' || h?.status === 'Missing';
  const describe = (r: {
    group?: string;
    kind: string;
    namespace?: string;
    name: string;
    health?: { status?: string; message?: string };
  }): string =>
    `${r.group ? `${r.group}/` : ''}${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}: ${r.health?.message ?? r.health?.status}`;
  let resources = (app.status?.resources ?? []).filter((r) => bad(r.health) && r.health?.message).map(describe);
  if (resources.length === 0) {
    try {
      const tree = await client.getResourceTree(ref);
      resources = (tree.nodes ?? []).filter((n) => bad(n.health) && n.health?.message).map(describe);
    } catch (err) {
      if (!(err instanceof ArgoCdError)) throw err;
    }
  }
  return [...conditions, ...resources];
}

// ---- the activities ---------------------------------------------------------------------------------------------

interface Target {
  client: ArgoCdClient;
  ref: AppRef;
  spec: ArgoCdSpec;
  signal: AbortSignal | undefined;
  fail(message: string, type: string, nonRetryable: boolean): ApplicationFailure;
}

/**
 * Reaching one app: resolves the token, builds the client, and turns Argo CD's answers into ApplicationFailures that
 * name the app and server and say what to do (401/403/404 non-retryable, 5xx and network errors retryable).
 */
export function createArgoCdAccess(secrets: SecretResolver, requestTimeoutMs: number) {
  function connect(spec: ArgoCdSpec): Target {
    const prefix = `argocd app "${spec.app}" at ${spec.server}`;
    const fail = (message: string, type: string, nonRetryable: boolean): ApplicationFailure =>
      ApplicationFailure.create({ message: secrets.redact(`${prefix}: ${message}`), type, nonRetryable });
    const token = secrets.resolve(spec.credentials).token;
    if (!token) {
      throw fail(
        `credential "${spec.credentials}" has no token; Argo CD needs a bearer token (an account or project role token)`,
        ArgoCdFailureType.Unauthorized,
        true,
      );
    }
    const signal = activityContext()?.cancellationSignal;
    const client = createArgoCdClient({
      server: spec.server,
      token,
      requestTimeoutMs,
      signal,
      redact: (text) => secrets.redact(text),
    });
    const ref: AppRef = { name: spec.app, project: spec.project, appNamespace: spec.appNamespace };
    return { client, ref, spec, signal, fail };
  }

  function fromArgoCdError(t: Target, err: ArgoCdError, doing: string): ApplicationFailure {
    const said = `${doing}: ${err.message}`;
    switch (err.status) {
      case 401:
        return t.fail(
          `${said}; check the token in credential "${t.spec.credentials}"`,
          ArgoCdFailureType.Unauthorized,
          true,
        );
      case 403:
        // A sync window that blocks manual syncs closes again: retry (with backoff) rather than fail for good.
        if (/blocked by sync window/i.test(err.message)) {
          return t.fail(`${said}; waiting for the sync window to open`, ArgoCdFailureType.Unavailable, false);
        }
        return t.fail(
          t.spec.project === undefined
            ? `${said}; the token may lack access, or the app may not exist (Argo CD answers 403 for both unless argocd.project is set)`
            : `${said}; the token lacks access to the app in project "${t.spec.project}"`,
          ArgoCdFailureType.Forbidden,
          true,
        );
      case 404:
        return t.fail(
          `${said}; no such app in project "${t.spec.project ?? '(any)'}"${t.spec.appNamespace ? ` and namespace "${t.spec.appNamespace}"` : ''}`,
          ArgoCdFailureType.NotFound,
          true,
        );
      default:
        return err.retryable
          ? t.fail(said, ArgoCdFailureType.Unavailable, false)
          : t.fail(said, ArgoCdFailureType.Invalid, true);
    }
  }

  /** Runs `work`, turning everything but cancellation into an ApplicationFailure naming the app and server. */
  async function guarded<T>(t: Target, work: (step: (doing: string) => void) => Promise<T>): Promise<T> {
    let doing = 'reading the app';
    try {
      return await work((next) => {
        doing = next;
      });
    } catch (err) {
      if (
        err instanceof ApplicationFailure ||
        err instanceof CancelledFailure ||
        (t.signal?.aborted && err === t.signal.reason)
      )
        throw err;
      if (err instanceof ArgoCdError) throw fromArgoCdError(t, err, doing);
      throw t.fail(`${doing}: ${(err as Error).message}`, ArgoCdFailureType.Unavailable, false);
    }
  }

  return { connect, guarded };
}

/** Paths of an app source that mean the root of the branch, where Ferry writes the rendered manifests. */
const ROOT_PATHS = new Set([undefined, '', '.', './', '/']);

/**
 * What is wrong with the app's source for a stage that writes `branch` of `repoUrl` (rendered manifests at the
 * root of the branch), or undefined when the app deploys exactly that.
 */
export function trackedSourceProblem(
  app: Application,
  repoUrl: string,
  branch: string,
  /** Where the stage's manifests are on that branch: '.' (the root of a stage branch) or the stage directory. */
  path = '.',
): string | undefined {
  const tracked = trackedSourceIndex(app, repoUrl, branch);
  if (typeof tracked === 'string') return tracked;
  const { sources, multi } = sourcesOf(app);
  const deployed = sources[tracked]?.path;
  const field = `${multi ? `spec.sources[${tracked}]` : 'spec.source'}.path`;
  if (path === '.' || path === '') {
    if (ROOT_PATHS.has(deployed)) return undefined;
    return (
      `deploys path "${deployed}" of branch "${branch}", but Ferry writes the stage's manifests at the root of that ` +
      `branch: set ${field} to "."`
    );
  }
  const normalized = (deployed ?? '').replace(/^(\.\/)+/, '').replace(/^\/+|\/+$/g, '');
  if (normalized === path) return undefined;
  return (
    `deploys path "${deployed ?? ''}" of branch "${branch}", but the stage is the directory "${path}": set ${field} ` +
    `to "${path}"`
  );
}

/**
 * Reads the stage's app (read-only) and checks that it deploys what the stage writes. A wrong or missing token, a
 * missing app or an app tracking another repository, branch or path fails non-retryably; an unreachable Argo CD
 * fails retryably. Returns a line for the step message.
 */
export async function checkArgoApp(
  access: ReturnType<typeof createArgoCdAccess>,
  spec: ArgoCdSpec,
  repoUrl: string,
  branch: string,
  path = '.',
): Promise<string> {
  const t = access.connect(spec);
  return access.guarded(t, async () => {
    const app = await t.client.getApplication(t.ref);
    const problem = trackedSourceProblem(app, repoUrl, branch, path);
    if (problem) throw t.fail(problem, ArgoCdFailureType.Invalid, true);
    const where = path === '.' ? branch : `${path} on ${branch}`;
    return `argocd: app "${spec.app}" at ${spec.server} is readable and deploys ${where}`;
  });
}

export function createArgoCdActivities(options: ArgoCdActivitiesOptions) {
  const { secrets } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 3_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 8_000;
  const degradedGraceMs = options.degradedGraceMs ?? 30_000;
  const unhealthyGraceMs = options.unhealthyGraceMs ?? 60_000;
  const operationWaitTimeoutMs = options.operationWaitTimeoutMs ?? 120_000;

  const { connect, guarded } = createArgoCdAccess(secrets, requestTimeoutMs);

  async function syncArgoApp(input: SyncArgoAppInput): Promise<SyncArgoAppResult> {
    const t = connect(input.argocd);
    return guarded(t, async (step) => {
      heartbeatIfActivity({ step: 'reading the app' });
      const app = await t.client.getApplication(t.ref);
      const tracked = trackedSourceIndex(app, input.repoUrl, input.branch);
      if (typeof tracked === 'string') throw t.fail(tracked, ArgoCdFailureType.Invalid, true);

      // A hard refresh makes Argo CD resolve the branch head again, so the sync below picks up the new commit.
      step('refreshing the app (hard)');
      heartbeatIfActivity({ step: 'refreshing' });
      let refreshed: Application;
      try {
        refreshed = await t.client.getApplication(t.ref, { refresh: 'hard' });
      } catch (err) {
        if (err instanceof ArgoCdError && err.status === 0 && !t.signal?.aborted) {
          throw t.fail(
            `a hard refresh did not finish within ${formatDuration(requestTimeoutMs)}; is the Argo CD application controller running? (${err.message})`,
            ArgoCdFailureType.Unavailable,
            false,
          );
        }
        throw err;
      }
      const automated = isAutomated(refreshed);
      if (taggedFor(refreshed, input.tag)) return { started: false, automated };
      if (automated) return { started: false, automated: true };

      const waitUntil = Date.now() + operationWaitTimeoutMs;
      for (;;) {
        step('requesting a sync');
        try {
          await t.client.syncApplication(t.ref, { infos: [{ name: PROMOTION_INFO, value: input.tag }] });
          return { started: true, automated: false };
        } catch (err) {
          if (!(
            err instanceof ArgoCdError &&
            err.status === 400 &&
            err.message.includes('another operation is already in progress')
          ))
            throw err;
        }
        // Someone else's operation is running (Kargo does the same): wait for it to finish, then ask again.
        step('waiting for another operation to finish');
        for (;;) {
          heartbeatIfActivity({ step: 'waiting for another operation' });
          await pause(pollIntervalMs, t.signal);
          heartbeatIfActivity({ step: 'waiting for another operation' });
          const current = await t.client.getApplication(t.ref);
          // Our earlier request may have landed after all (a lost response).
          if (taggedFor(current, input.tag)) return { started: false, automated: false };
          if (!current.operation) break;
          if (Date.now() >= waitUntil) {
            const by = current.operation.initiatedBy;
            throw t.fail(
              `another operation (${by?.automated ? 'automated' : `by ${by?.username ?? 'someone else'}`}) is still running after ${formatDuration(operationWaitTimeoutMs)}; will try again`,
              ArgoCdFailureType.OperationInProgress,
              false,
            );
          }
        }
      }
    });
  }

  async function waitArgoAppHealthy(input: WaitArgoAppHealthyInput): Promise<WaitArgoAppHealthyResult> {
    const t = connect(input.argocd);
    // A retried attempt keeps the first attempt's clock, so the stage's timeout bounds the whole wait.
    const previous = previousHeartbeat()?.startedAt;
    const startedAt = typeof previous === 'number' ? previous : Date.now();
    const deadline = startedAt + input.timeoutMs;
    const memory: WaitMemory = { sawProgress: false };
    return guarded(t, async (step) => {
      let refresh = false;
      let lastState = 'not read yet';
      let lastError: string | undefined;
      let sourceIndex: number | undefined;
      // Later commits of a shared branch, checked once each: which contain ours, which do not.
      const containing = new Set<string>();
      const notContaining = new Set<string>();
      const learnRevisions = async (app: Application, index: number): Promise<void> => {
        if (!input.sharedBranch || !options.containsCommit) return;
        const { multi } = sourcesOf(app);
        const seen = [
          revisionAt(app.status?.sync?.revision, app.status?.sync?.revisions, index, multi),
          revisionAt(
            app.status?.operationState?.syncResult?.revision,
            app.status?.operationState?.syncResult?.revisions,
            index,
            multi,
          ),
        ];
        for (const candidate of seen) {
          if (!candidate || candidate === input.revision || containing.has(candidate) || notContaining.has(candidate))
            continue;
          step(`checking whether ${short(candidate)} contains ${short(input.revision)}`);
          const contains = await options.containsCommit({
            repo: input.sharedBranch,
            commit: input.revision,
            candidate,
          });
          (contains ? containing : notContaining).add(candidate);
        }
      };
      for (;;) {
        const remaining = deadline - Date.now();
        // Before every request and every sleep: together they must stay within the heartbeat timeout.
        heartbeatIfActivity({ startedAt, state: secrets.redact(lastState).slice(0, 200) });
        let app: Application | undefined;
        try {
          step(refresh ? 'refreshing the app' : 'reading the app');
          app = await t.client.getApplication(
            t.ref,
            refresh ? { refresh: 'normal', timeoutMs: Math.max(100, Math.min(requestTimeoutMs, remaining)) } : {},
          );
        } catch (err) {
          // Argo CD or a proxy hiccuping is not the app being unhealthy: keep polling until the deadline.
          if (!(err instanceof ArgoCdError && err.retryable) || t.signal?.aborted) throw err;
          lastError = err.message;
        }
        refresh = false;
        if (app) {
          lastError = undefined;
          if (sourceIndex === undefined) {
            const tracked = trackedSourceIndex(app, input.repoUrl, input.branch);
            if (typeof tracked === 'string') throw t.fail(tracked, ArgoCdFailureType.Invalid, true);
            sourceIndex = tracked;
          }
          await learnRevisions(app, sourceIndex);
          const assessment = assessApplication(
            app,
            {
              revision: input.revision,
              containing,
              tag: input.tag,
              sourceIndex,
              degradedGraceMs: graceMs(input.argocd.degradedGrace, degradedGraceMs),
              unhealthyGraceMs: graceMs(input.argocd.unhealthyGrace, unhealthyGraceMs),
            },
            memory,
            Date.now(),
          );
          if (assessment.verdict === 'healthy') {
            const { multi } = sourcesOf(app);
            const at = revisionAt(app.status?.sync?.revision, app.status?.sync?.revisions, sourceIndex, multi);
            return {
              revision: at ?? input.revision,
              health: 'Healthy',
              syncStatus: 'Synced',
              waitedMs: Date.now() - startedAt,
            };
          }
          if (assessment.verdict === 'fail') {
            // A second request after the read: heartbeat first, or the two together may outlast the heartbeat timeout
            // and turn this non-retryable failure into a timed-out attempt that starts the grace period over.
            if (assessment.collectResourceReasons)
              heartbeatIfActivity({ startedAt, state: secrets.redact(assessment.message).slice(0, 200) });
            const reasons = assessment.collectResourceReasons ? await resourceReasons(t.client, t.ref, app) : [];
            throw t.fail(
              `${assessment.message}${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`,
              assessment.type,
              true,
            );
          }
          lastState = assessment.state;
          refresh = assessment.refresh;
        }
        const now = Date.now();
        if (now >= deadline) {
          throw t.fail(
            `not healthy at ${input.revision} after ${formatDuration(input.timeoutMs)}: last state ${lastState}` +
              (lastError ? `; then Argo CD did not answer: ${lastError}` : ''),
            ArgoCdFailureType.Timeout,
            true,
          );
        }
        heartbeatIfActivity({ startedAt, state: secrets.redact(lastState).slice(0, 200) });
        await pause(Math.min(pollIntervalMs, deadline - now), t.signal);
      }
    });
  }

  return { syncArgoApp, waitArgoAppHealthy };
}
