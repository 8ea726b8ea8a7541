// The simulated Argo CD application controller, in real time with small configurable delays:
// reconcile → operation pickup → sync → completion → post-op reconcile, with health following a script after each
// deploy. Between completion and the post-op reconcile, status.sync/health still describe the old state: the
// stale-health window that a correct client must not mistake for success.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  clone,
  isAutomated,
  isMultiSource,
  REFRESH_ANNOTATION,
  sourcesOf,
  wireTime,
  type Application,
  type Condition,
  type HealthStatus,
  type Info,
  type Operation,
  type OperationPhase,
  type ResourceNode,
  type ResourceResult,
  type ResourceStatus,
  type Source,
  type Spec,
  type SyncStatus,
} from './model';
import {
  repoKey,
  resolveRevision,
  RevisionNotResolvable,
  shortRef,
  type RepoCredentials,
  type RepoMap,
} from './resolve';

export interface Timing {
  /** Spec change or refresh request → reconcile. */
  reconcileDelayMs: number;
  /** Operation written → controller picks it up (phase Running). */
  pickupDelayMs: number;
  /** Running → completed. */
  syncDurationMs: number;
  /** Completed → the reconcile that refreshes sync and health: the stale-health window. */
  postOpReconcileDelayMs: number;
  /** Deploy → Healthy under the default health script (Progressing until then). */
  progressingMs: number;
  /** Periodic reconcile; 0 turns it off. */
  reconcileIntervalMs: number;
}

export const DEFAULT_TIMING: Timing = {
  reconcileDelayMs: 20,
  pickupDelayMs: 30,
  syncDurationMs: 120,
  postOpReconcileDelayMs: 250,
  progressingMs: 300,
  reconcileIntervalMs: 0,
};

export interface HealthStep {
  /** Milliseconds after the deploy (operation completion). */
  afterMs: number;
  status: HealthStatus;
  message?: string;
}

export interface ResourceSeed {
  kind: 'Deployment' | 'StatefulSet' | 'Service' | 'ConfigMap';
  name: string;
}

export interface AppSeed {
  name: string;
  /** Default "argocd", the control-plane namespace. */
  namespace?: string;
  project?: string;
  repoURL: string;
  path?: string;
  /** Default "HEAD". */
  targetRevision?: string;
  destination?: { server?: string; namespace?: string };
  automated?: boolean;
  /** Health of what is live before any sync (default Healthy). */
  health?: HealthStatus;
  healthMessage?: string;
  /**
   * What is deployed at seed time: a SHA; `null` for nothing; default the resolved target (the app starts Synced).
   */
  deployedRevision?: string | null;
  /** Health after each deploy; default Progressing, then Healthy after `progressingMs`. */
  healthScript?: HealthStep[];
  /** Default: a Deployment and a Service named like the app. The first workload's health follows the script. */
  resources?: ResourceSeed[];
  timing?: Partial<Timing>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface Scope {
  /** Only this app; default every app (and, for request injections, every request). */
  app?: string;
  /** Apply this many times, then drop the injection; default: until cleared. */
  times?: number;
}

/** Injections that change how a request is answered. */
export type RequestInjection = Scope &
  (
    | { kind: 'unauthenticated'; message?: string }
    | { kind: 'forbidden' }
    | { kind: 'notFound' }
    | { kind: 'serverError'; status?: 500 | 502 | 503 | 504; message?: string }
    | { kind: 'slow'; latencyMs: number }
    /** GET ?refresh= is never processed: the request hangs until the client gives up. */
    | { kind: 'hangRefresh' }
  );

/** Injections that change what the controller does. */
export type ControllerInjection = Scope &
  /** Starts a foreign operation (initiated by `username`, default admin) now, lasting durationMs. */
  (
    | { kind: 'operationInProgress'; durationMs?: number; username?: string }
    | { kind: 'syncFailed'; message?: string }
    | { kind: 'syncError'; message?: string }
    | { kind: 'degraded'; message?: string; afterMs?: number; healthyFirst?: boolean }
    | { kind: 'stuckProgressing'; message?: string }
    | { kind: 'suspended' }
    | { kind: 'missing' }
    | { kind: 'staleHealthWindow'; postOpReconcileDelayMs: number }
  );

export type Injection = RequestInjection | ControllerInjection;
export type InjectionKind = Injection['kind'];

export interface ControllerEvent {
  at: number;
  app: string;
  type: 'reconciled' | 'operationRequested' | 'operationRunning' | 'operationCompleted' | 'refreshRequested';
  reason?: string;
  syncStatus?: SyncStatus;
  health?: HealthStatus;
  revision?: string;
  phase?: OperationPhase;
}

/** A gRPC status, turned into the grpc-gateway error body by the server. */
export class WireError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface SyncRequest {
  revision?: string;
  revisions?: string[];
  sourcePositions?: number[];
  prune?: boolean;
  dryRun?: boolean;
  strategy?: unknown;
  resources?: unknown[];
  syncOptions?: { items?: string[] };
  retryStrategy?: unknown;
  infos?: Info[];
}

interface Deployed {
  revisions: string[];
  at: number;
  /** undefined: what the seed put there, with the seed's health. */
  script?: HealthStep[];
}

interface AppState {
  app: Application;
  seed: AppSeed;
  resources: ResourceSeed[];
  deployed?: Deployed;
  /** Bumped whenever an operation's scheduled steps must no longer run (new operation, terminate). */
  opToken: number;
  syncDurationMs?: number;
  refreshWaiters: Set<() => void>;
  reconciling: Promise<void>;
  removed: boolean;
  uids: Map<string, string>;
  interval?: NodeJS.Timeout;
}

interface StoredInjection {
  id: string;
  injection: Injection;
  remaining: number;
}

const DEFAULT_NAMESPACE = 'argocd';
const TICK_MS = 10;
const WORKLOADS = new Set(['Deployment', 'StatefulSet']);

function key(name: string, namespace = DEFAULT_NAMESPACE): string {
  return `${namespace}/${name}`;
}

export class ArgoCdSimulation {
  readonly repos: RepoMap = new Map();
  readonly repoCredentials: RepoCredentials = new Map();
  readonly events: ControllerEvent[] = [];
  timing: Timing;
  private readonly apps = new Map<string, AppState>();
  private injections: StoredInjection[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private resourceVersion = 1000;
  private injectionSeq = 0;

  constructor(timing: Partial<Timing> = {}) {
    this.timing = { ...DEFAULT_TIMING, ...timing };
  }

  // ---- test control -------------------------------------------------------------------------------------------

  async addApp(seed: AppSeed): Promise<Application> {
    const namespace = seed.namespace ?? DEFAULT_NAMESPACE;
    const existing = this.apps.get(key(seed.name, namespace));
    if (existing) this.dispose(existing);
    const now = Date.now();
    const source: Source = {
      repoURL: seed.repoURL,
      path: seed.path ?? '.',
      targetRevision: seed.targetRevision ?? 'HEAD',
    };
    const spec: Spec = {
      project: seed.project ?? 'default',
      source,
      destination: {
        server: seed.destination?.server ?? 'https://kubernetes.default.svc',
        namespace: seed.destination?.namespace ?? seed.name,
      },
      ...(seed.automated ? { syncPolicy: { automated: { prune: true, selfHeal: true } } } : {}),
    };
    const app: Application = {
      metadata: {
        name: seed.name,
        namespace,
        uid: randomUUID(),
        resourceVersion: String(++this.resourceVersion),
        generation: 1,
        creationTimestamp: wireTime(now),
        ...(seed.labels ? { labels: { ...seed.labels } } : {}),
        ...(seed.annotations ? { annotations: { ...seed.annotations } } : {}),
      },
      spec,
      status: {
        sync: { status: 'Unknown' },
        health: {},
        sourceType: 'Directory',
        resourceHealthSource: 'appTree',
        controllerNamespace: DEFAULT_NAMESPACE,
        summary: {},
      },
    };
    const state: AppState = {
      app,
      seed,
      resources: seed.resources ?? [
        { kind: 'Deployment', name: seed.name },
        { kind: 'Service', name: seed.name },
      ],
      opToken: 0,
      refreshWaiters: new Set(),
      reconciling: Promise.resolve(),
      removed: false,
      uids: new Map(),
    };
    if (seed.deployedRevision !== null) {
      let revision = seed.deployedRevision;
      if (revision === undefined) {
        try {
          revision = await resolveRevision(this.repos, source.repoURL, source.targetRevision, this.repoCredentials);
        } catch (err) {
          if (!(err instanceof RevisionNotResolvable)) throw err;
        }
      }
      if (revision !== undefined) {
        state.deployed = { revisions: [revision], at: now };
        app.status.history = [
          {
            id: 0,
            revision,
            deployedAt: wireTime(now),
            deployStartedAt: wireTime(now),
            source: clone(source),
            initiatedBy: { username: 'admin' },
          },
        ];
      }
    }
    this.apps.set(key(seed.name, namespace), state);
    const interval = this.timingOf(state).reconcileIntervalMs;
    if (interval > 0) state.interval = setInterval(() => void this.reconcile(state, 'periodic'), interval);
    await this.reconcile(state, 'created');
    return this.view(state, true);
  }

  removeApp(name: string, namespace?: string): boolean {
    const state = this.apps.get(key(name, namespace));
    if (!state) return false;
    this.dispose(state);
    this.apps.delete(key(name, namespace));
    return true;
  }

  /** Credentials for reading repoURL, as an Argo CD repository secret gives them. */
  setRepoCredentials(repoURL: string, credentials: { username: string; password: string }): void {
    this.repoCredentials.set(repoKey(repoURL), credentials);
  }

  /** Merges refs (`main`, `refs/heads/main`, `v1.0`) → SHA into the repo map for repoURL. */
  setRepo(repoURL: string, refs: Record<string, string>): void {
    const k = repoKey(repoURL);
    const map = this.repos.get(k) ?? new Map<string, string>();
    for (const [ref, sha] of Object.entries(refs)) map.set(shortRef(ref), sha);
    this.repos.set(k, map);
  }

  async inject(injection: Injection): Promise<string> {
    if (injection.kind === 'operationInProgress') {
      const state = injection.app ? this.find(injection.app) : undefined;
      if (!state) throw new Error('operationInProgress needs the name of an existing app');
      const spec = state.app.spec;
      const revisions = await Promise.all(
        sourcesOf(spec).map((s) => resolveRevision(this.repos, s.repoURL, s.targetRevision, this.repoCredentials)),
      );
      if (state.app.operation) throw new Error(`app ${injection.app} already has an operation`);
      this.startOperation(
        state,
        {
          sync: { ...this.revisionFields(spec, revisions), syncStrategy: { hook: {} } },
          initiatedBy: { username: injection.username ?? 'admin' },
        },
        injection.durationMs,
      );
      return `op-${++this.injectionSeq}`;
    }
    const id = `inj-${++this.injectionSeq}`;
    this.injections.push({ id, injection, remaining: injection.times ?? Number.POSITIVE_INFINITY });
    return id;
  }

  clearInjections(): void {
    this.injections = [];
  }

  /** The first matching injection of one of `kinds`, counted as used. */
  take<K extends InjectionKind>(
    app: string | undefined,
    kinds: readonly K[],
  ): Extract<Injection, { kind: K }> | undefined {
    const index = this.injections.findIndex(
      (s) =>
        (kinds as readonly InjectionKind[]).includes(s.injection.kind) &&
        (s.injection.app === undefined || s.injection.app === app),
    );
    if (index < 0) return undefined;
    const stored = this.injections[index];
    stored.remaining -= 1;
    if (stored.remaining <= 0) this.injections.splice(index, 1);
    return stored.injection as Extract<Injection, { kind: K }>;
  }

  reset(timing: Partial<Timing> = {}): void {
    for (const state of this.apps.values()) this.dispose(state);
    this.apps.clear();
    this.repos.clear();
    this.repoCredentials.clear();
    this.injections = [];
    this.events.length = 0;
    this.timing = { ...DEFAULT_TIMING, ...timing };
  }

  close(): void {
    for (const state of this.apps.values()) this.dispose(state);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  // ---- reads ----------------------------------------------------------------------------------------------------

  find(name: string, namespace?: string): AppState | undefined {
    return this.apps.get(key(name, namespace));
  }

  all(): AppState[] {
    return [...this.apps.values()];
  }

  /**
   * The app as the API returns it. Get/Sync responses carry per-resource health inferred from the live tree; List
   * does not (v3, resourceHealthSource: appTree).
   */
  view(state: AppState, withResourceHealth: boolean): Application {
    const app = clone(state.app);
    if (withResourceHealth && app.status.resources) {
      const nodes = this.resourceTree(state);
      for (const resource of app.status.resources) {
        const node = nodes.find(
          (n) => n.kind === resource.kind && n.name === resource.name && n.namespace === resource.namespace,
        );
        resource.health = node?.health ?? { status: 'Missing' };
      }
    }
    return app;
  }

  /** The live resources now (the tree is the controller's cache: current even while status is stale). */
  resourceTree(state: AppState): ResourceNode[] {
    const live = this.liveHealth(state, Date.now());
    if (!state.deployed || live.status === 'Missing') return [];
    const namespace = state.app.spec.destination.namespace;
    const createdAt = wireTime(state.deployed.at);
    const nodes: ResourceNode[] = [];
    const primary = this.primaryWorkload(state);
    for (const resource of state.resources) {
      const uid = this.uid(state, `${resource.kind}/${resource.name}`);
      const workload = WORKLOADS.has(resource.kind);
      const health = resource === primary ? live : { status: 'Healthy' as const };
      nodes.push({
        ...(workload ? { group: 'apps' } : {}),
        version: 'v1',
        kind: resource.kind,
        namespace,
        name: resource.name,
        uid,
        resourceVersion: String(this.resourceVersion),
        ...(resource.kind === 'ConfigMap'
          ? {}
          : { health: { status: health.status, ...(health.message ? { message: health.message } : {}) } }),
        ...(workload ? { info: [{ name: 'Revision', value: `Rev:${state.app.status.history?.length ?? 1}` }] } : {}),
        createdAt,
      });
      if (resource.kind === 'Deployment') {
        const rsName = `${resource.name}-${uid.slice(0, 10).replace(/-/g, '')}`;
        nodes.push({
          group: 'apps',
          version: 'v1',
          kind: 'ReplicaSet',
          namespace,
          name: rsName,
          uid: this.uid(state, `ReplicaSet/${rsName}`),
          resourceVersion: String(this.resourceVersion),
          parentRefs: [{ group: 'apps', kind: 'Deployment', namespace, name: resource.name, uid }],
          health: {
            status: health.status === 'Degraded' ? 'Degraded' : health.status === 'Healthy' ? 'Healthy' : 'Progressing',
          },
          createdAt,
        });
      }
    }
    return nodes;
  }

  // ---- API writes -----------------------------------------------------------------------------------------------

  /** POST sync, after RBAC: revision vs auto-sync, resolvability, then the in-flight check. */
  async sync(state: AppState, request: SyncRequest, username: string): Promise<Application> {
    const spec = state.app.spec;
    const sources = sourcesOf(spec);
    const overrides: (string | undefined)[] = sources.map(() => undefined);
    if (isMultiSource(spec)) {
      (request.sourcePositions ?? []).forEach((position, i) => {
        overrides[position - 1] = request.revisions?.[i];
      });
    } else if (request.revision) {
      overrides[0] = request.revision;
    }
    sources.forEach((source, i) => {
      const target = source.targetRevision || 'HEAD';
      const wanted = overrides[i];
      if (wanted && wanted !== target && isAutomated(spec) && !request.dryRun) {
        throw new WireError(9, `Cannot sync to ${wanted}: auto-sync currently set to ${target}`);
      }
    });
    let revisions: string[];
    try {
      revisions = await Promise.all(
        sources.map((s, i) =>
          resolveRevision(this.repos, s.repoURL, overrides[i] ?? s.targetRevision, this.repoCredentials),
        ),
      );
    } catch (err) {
      if (err instanceof RevisionNotResolvable) throw new WireError(9, err.message);
      throw err;
    }
    if (state.removed) throw new WireError(5, `applications.argoproj.io "${state.app.metadata.name}" not found`);
    if (state.app.operation) throw new WireError(9, 'another operation is already in progress');
    const syncOptions = request.syncOptions?.items ?? spec.syncPolicy?.syncOptions;
    const operation: Operation = {
      sync: {
        ...this.revisionFields(spec, revisions),
        ...(request.prune ? { prune: true } : {}),
        ...(request.dryRun ? { dryRun: true } : {}),
        ...(request.strategy !== undefined ? { syncStrategy: request.strategy } : {}),
        ...(request.resources && request.resources.length > 0 ? { resources: request.resources } : {}),
        ...(syncOptions && syncOptions.length > 0 ? { syncOptions } : {}),
      },
      initiatedBy: { username },
      ...(request.infos && request.infos.length > 0 ? { info: request.infos } : {}),
      ...((request.retryStrategy ?? spec.syncPolicy?.retry) !== undefined
        ? { retry: request.retryStrategy ?? spec.syncPolicy?.retry }
        : {}),
    };
    this.startOperation(state, operation);
    return this.view(state, true);
  }

  /** DELETE operation: Terminating now, Failed "Operation terminated" on the next tick. */
  terminate(state: AppState): void {
    const operationState = state.app.status.operationState;
    if (!state.app.operation || !operationState) {
      throw new WireError(3, 'Unable to terminate operation. No operation is in progress');
    }
    operationState.phase = 'Terminating';
    const token = ++state.opToken;
    this.bump(state);
    this.after(state, TICK_MS, () => {
      if (token === state.opToken) this.finishOperation(state, 'Failed', 'Operation terminated');
    });
  }

  /** Replaces the spec (PUT spec, PATCH); validates revisions when asked, as `validate=true` does. */
  async updateSpec(
    state: AppState,
    spec: Spec,
    validate: boolean,
    metadata?: Pick<Application['metadata'], 'labels' | 'annotations'>,
  ): Promise<void> {
    const sources = sourcesOf(spec);
    for (const source of sources) {
      if (typeof source.repoURL !== 'string' || source.repoURL === '') {
        throw new WireError(
          3,
          `application spec for ${state.app.metadata.name} is invalid: InvalidSpecError: spec.source.repoURL and either spec.source.path, spec.source.chart, or spec.source.ref are required`,
        );
      }
    }
    if (sources.length === 0) {
      throw new WireError(
        3,
        `application spec for ${state.app.metadata.name} is invalid: InvalidSpecError: spec.source or spec.sources is required`,
      );
    }
    if (validate) {
      for (const source of sources) {
        try {
          await resolveRevision(this.repos, source.repoURL, source.targetRevision, this.repoCredentials);
        } catch (err) {
          if (!(err instanceof RevisionNotResolvable)) throw err;
          throw new WireError(
            3,
            `application spec for ${state.app.metadata.name} is invalid: InvalidSpecError: Unable to generate manifests in ${source.path ?? '.'}: rpc error: code = Unknown desc = ${err.message}`,
          );
        }
      }
    }
    const next: Spec = { ...spec, project: spec.project || 'default' };
    const specChanged = !isDeepStrictEqual(next, state.app.spec);
    const metadataChanged =
      metadata !== undefined &&
      (!isDeepStrictEqual(metadata.labels, state.app.metadata.labels) ||
        !isDeepStrictEqual(metadata.annotations, state.app.metadata.annotations));
    if (metadata) {
      state.app.metadata.labels = metadata.labels;
      state.app.metadata.annotations = metadata.annotations;
    }
    if (specChanged) {
      state.app.spec = next;
      state.app.metadata.generation += 1;
    }
    if (specChanged || metadataChanged) this.bump(state);
    if (specChanged)
      this.after(state, this.timingOf(state).reconcileDelayMs, () => void this.reconcile(state, 'specChanged'));
  }

  /**
   * GET ?refresh=: set the annotation, let the controller reconcile, resolve when the annotation is gone. Rejects
   * when `signal` aborts (the client went away); never resolves under `hangRefresh`.
   */
  refresh(state: AppState, type: 'normal' | 'hard', signal: AbortSignal): Promise<void> {
    state.app.metadata.annotations = { ...state.app.metadata.annotations, [REFRESH_ANNOTATION]: type };
    this.bump(state);
    this.event(state, { type: 'refreshRequested', reason: type });
    const hang = this.take(state.app.metadata.name, ['hangRefresh'] as const) !== undefined;
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        signal.removeEventListener('abort', aborted);
        resolve();
      };
      const aborted = (): void => {
        state.refreshWaiters.delete(done);
        reject(new Error('client went away'));
      };
      signal.addEventListener('abort', aborted, { once: true });
      if (hang) return;
      state.refreshWaiters.add(done);
      this.after(state, this.timingOf(state).reconcileDelayMs, () => void this.reconcile(state, `refresh=${type}`));
    });
  }

  // ---- the controller -------------------------------------------------------------------------------------------

  private reconcile(state: AppState, reason: string): Promise<void> {
    // One reconcile at a time per app, like the controller's per-app queue.
    state.reconciling = state.reconciling.then(() => this.reconcileNow(state, reason)).catch(() => undefined);
    return state.reconciling;
  }

  private async reconcileNow(state: AppState, reason: string): Promise<void> {
    if (state.removed) return;
    const spec = state.app.spec;
    const sources = sourcesOf(spec);
    let revisions: string[] | undefined;
    let unresolved: RevisionNotResolvable | undefined;
    try {
      revisions = await Promise.all(
        sources.map((s) => resolveRevision(this.repos, s.repoURL, s.targetRevision, this.repoCredentials)),
      );
    } catch (err) {
      if (!(err instanceof RevisionNotResolvable)) throw err;
      unresolved = err;
    }
    if (state.removed) return;
    const now = Date.now();
    const status = state.app.status;
    const comparedTo = {
      ...(isMultiSource(spec) ? { sources: clone(spec.sources) } : { source: clone(spec.source) }),
      destination: clone(spec.destination),
    };
    const otherConditions = (status.conditions ?? []).filter((c) => c.type !== 'ComparisonError');
    if (revisions === undefined) {
      status.sync = { status: 'Unknown', comparedTo };
      this.setHealth(state, 'Unknown', now);
      const condition: Condition = {
        type: 'ComparisonError',
        message: `Failed to load target state: failed to generate manifest for source 1 of ${sources.length}: rpc error: code = Unknown desc = ${unresolved?.message ?? 'no source'}`,
        lastTransitionTime: wireTime(now),
      };
      status.conditions = [...otherConditions, condition];
    } else {
      const synced = state.deployed !== undefined && isDeepStrictEqual(state.deployed.revisions, revisions);
      status.sync = { status: synced ? 'Synced' : 'OutOfSync', ...this.revisionFields(spec, revisions), comparedTo };
      this.setHealth(state, this.liveHealth(state, now).status, now);
      status.conditions = otherConditions.length > 0 ? otherConditions : undefined;
    }
    status.reconciledAt = wireTime(now);
    status.resources = this.resourceStatuses(state, status.sync.status);
    const annotations = { ...state.app.metadata.annotations };
    delete annotations[REFRESH_ANNOTATION];
    state.app.metadata.annotations = Object.keys(annotations).length > 0 ? annotations : undefined;
    this.bump(state);
    this.event(state, {
      type: 'reconciled',
      reason,
      syncStatus: status.sync.status,
      health: status.health.status,
      revision: revisions?.[0],
    });
    for (const waiter of [...state.refreshWaiters]) {
      state.refreshWaiters.delete(waiter);
      waiter();
    }
    if (
      revisions &&
      isAutomated(spec) &&
      status.sync.status === 'OutOfSync' &&
      !state.app.operation &&
      !this.alreadyAttempted(state, revisions)
    ) {
      this.startOperation(state, {
        sync: {
          ...this.revisionFields(spec, revisions),
          ...(spec.syncPolicy?.automated?.prune ? { prune: true } : {}),
        },
        initiatedBy: { automated: true },
        ...(spec.syncPolicy?.retry !== undefined ? { retry: spec.syncPolicy.retry } : {}),
      });
    }
  }

  /** Auto-sync does not retry a revision whose last attempt failed (the controller's `alreadyAttemptedSync`). */
  private alreadyAttempted(state: AppState, revisions: string[]): boolean {
    const last = state.app.status.operationState;
    if (!last || last.phase === 'Succeeded' || last.phase === 'Running' || last.phase === 'Terminating') return false;
    const synced = last.syncResult?.revisions ?? (last.syncResult?.revision ? [last.syncResult.revision] : []);
    return isDeepStrictEqual(synced, revisions);
  }

  private startOperation(state: AppState, operation: Operation, syncDurationMs?: number): void {
    state.app.operation = operation;
    delete state.app.status.operationState;
    const token = ++state.opToken;
    state.syncDurationMs = syncDurationMs;
    this.bump(state);
    this.event(state, {
      type: 'operationRequested',
      revision: operation.sync.revision ?? operation.sync.revisions?.[0],
    });
    this.after(state, this.timingOf(state).pickupDelayMs, () => this.pickUp(state, token));
  }

  private pickUp(state: AppState, token: number): void {
    const operation = state.app.operation;
    if (token !== state.opToken || !operation) return;
    const now = Date.now();
    state.app.status.operationState = { operation: clone(operation), phase: 'Running', startedAt: wireTime(now) };
    this.bump(state);
    this.event(state, { type: 'operationRunning', phase: 'Running' });
    const duration = state.syncDurationMs ?? this.timingOf(state).syncDurationMs;
    this.after(state, Math.min(TICK_MS, duration / 2), () => {
      const operationState = state.app.status.operationState;
      if (token !== state.opToken || operationState?.phase !== 'Running') return;
      const spec = state.app.spec;
      operationState.syncResult = {
        ...(operation.sync.revisions ? { revisions: operation.sync.revisions } : { revision: operation.sync.revision }),
        ...(isMultiSource(spec) ? { sources: clone(spec.sources) } : { source: clone(spec.source) }),
      };
      operationState.message = 'one or more tasks are running';
      this.bump(state);
    });
    this.after(state, duration, () => {
      if (token !== state.opToken) return;
      const failure = this.take(state.app.metadata.name, ['syncFailed', 'syncError'] as const);
      if (failure?.kind === 'syncFailed') {
        const reason =
          failure.message ??
          `Deployment.apps "${this.primaryWorkload(state)?.name ?? state.app.metadata.name}" is invalid: spec.template.spec.containers[0].image: Required value`;
        this.finishOperation(state, 'Failed', `one or more objects failed to apply, reason: ${reason}`, reason);
      } else if (failure?.kind === 'syncError') {
        this.finishOperation(
          state,
          'Error',
          failure.message ??
            'ComparisonError: Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = Manifest generation error',
        );
      } else {
        this.finishOperation(state, 'Succeeded', 'successfully synced (all tasks run)');
      }
    });
  }

  private finishOperation(
    state: AppState,
    phase: OperationPhase,
    message: string,
    failedResourceMessage?: string,
  ): void {
    const operation = state.app.operation;
    const operationState = state.app.status.operationState;
    if (!operation || !operationState) return;
    const now = Date.now();
    const spec = state.app.spec;
    const revisions = operation.sync.revisions ?? (operation.sync.revision ? [operation.sync.revision] : []);
    operationState.syncResult ??= {
      ...(operation.sync.revisions ? { revisions: operation.sync.revisions } : { revision: operation.sync.revision }),
      ...(isMultiSource(spec) ? { sources: clone(spec.sources) } : { source: clone(spec.source) }),
    };
    const namespace = spec.destination.namespace;
    if (phase === 'Succeeded' || failedResourceMessage !== undefined) {
      const primary = this.primaryWorkload(state);
      operationState.syncResult.resources = state.resources.map((r): ResourceResult => {
        const failed = failedResourceMessage !== undefined && r === primary;
        return {
          ...(WORKLOADS.has(r.kind) ? { group: 'apps' } : {}),
          version: 'v1',
          kind: r.kind,
          namespace,
          name: r.name,
          status: failed ? 'SyncFailed' : 'Synced',
          message: failed
            ? failedResourceMessage
            : `${r.kind.toLowerCase()}${WORKLOADS.has(r.kind) ? '.apps' : ''}/${r.name} configured`,
          hookPhase: failed ? 'Failed' : 'Running',
          syncPhase: 'Sync',
        };
      });
    }
    operationState.phase = phase;
    operationState.message = message;
    operationState.finishedAt = wireTime(now);
    delete state.app.operation;
    let postOpDelay = this.timingOf(state).postOpReconcileDelayMs;
    if (phase === 'Succeeded' && !operation.sync.dryRun) {
      const history = state.app.status.history ?? [];
      history.push({
        id: (history.at(-1)?.id ?? -1) + 1,
        ...this.revisionFields(spec, revisions),
        deployedAt: wireTime(now),
        deployStartedAt: operationState.startedAt,
        ...(isMultiSource(spec) ? { sources: clone(spec.sources) } : { source: clone(spec.source) }),
        initiatedBy: operation.initiatedBy,
      });
      state.app.status.history = history.slice(-10);
      const stale = this.take(state.app.metadata.name, ['staleHealthWindow'] as const);
      if (stale) postOpDelay = stale.postOpReconcileDelayMs;
      const script = this.healthScript(state);
      state.deployed = { revisions, at: now, script };
      // Resource watch events make the controller reconcile when live health changes after the post-op reconcile.
      for (const step of script) {
        if (step.afterMs > postOpDelay)
          this.after(state, step.afterMs, () => void this.reconcile(state, 'resourceHealthChanged'));
      }
    }
    this.bump(state);
    this.event(state, { type: 'operationCompleted', phase, revision: revisions[0] });
    this.after(state, postOpDelay, () => void this.reconcile(state, 'operationCompleted'));
  }

  private healthScript(state: AppState): HealthStep[] {
    const { progressingMs } = this.timingOf(state);
    const workload = this.primaryWorkload(state)?.name ?? state.app.metadata.name;
    const progressing: HealthStep = {
      afterMs: 0,
      status: 'Progressing',
      message: 'Waiting for rollout to finish: 0 of 1 updated replicas are available...',
    };
    const injected = this.take(state.app.metadata.name, [
      'degraded',
      'stuckProgressing',
      'suspended',
      'missing',
    ] as const);
    switch (injected?.kind) {
      case 'degraded': {
        const message = injected.message ?? `Deployment "${workload}" exceeded its progress deadline`;
        if (injected.healthyFirst) {
          return [
            progressing,
            { afterMs: progressingMs, status: 'Healthy' },
            { afterMs: injected.afterMs ?? 2 * progressingMs, status: 'Degraded', message },
          ];
        }
        return [progressing, { afterMs: injected.afterMs ?? progressingMs, status: 'Degraded', message }];
      }
      case 'stuckProgressing':
        return [{ ...progressing, ...(injected.message ? { message: injected.message } : {}) }];
      case 'suspended':
        return [{ afterMs: 0, status: 'Suspended', message: 'Deployment is paused' }];
      case 'missing':
        return [{ afterMs: 0, status: 'Missing' }];
      default:
        return state.seed.healthScript ?? [progressing, { afterMs: progressingMs, status: 'Healthy' }];
    }
  }

  private liveHealth(state: AppState, now: number): { status: HealthStatus; message?: string } {
    const deployed = state.deployed;
    if (!deployed) return { status: 'Missing' };
    if (!deployed.script)
      return {
        status: state.seed.health ?? 'Healthy',
        ...(state.seed.healthMessage ? { message: state.seed.healthMessage } : {}),
      };
    let current: HealthStep = deployed.script[0] ?? { afterMs: 0, status: 'Healthy' };
    for (const step of deployed.script) if (now - deployed.at >= step.afterMs) current = step;
    return { status: current.status, ...(current.message ? { message: current.message } : {}) };
  }

  /** App health is the worst resource health; only the primary workload's health varies here. */
  private setHealth(state: AppState, status: HealthStatus, now: number): void {
    if (state.app.status.health.status !== status)
      state.app.status.health = { status, lastTransitionTime: wireTime(now) };
  }

  private resourceStatuses(state: AppState, sync: SyncStatus): ResourceStatus[] {
    const namespace = state.app.spec.destination.namespace;
    return state.resources.map((r) => ({
      ...(WORKLOADS.has(r.kind) ? { group: 'apps' } : {}),
      version: 'v1',
      kind: r.kind,
      namespace,
      name: r.name,
      status: sync === 'Unknown' ? 'Unknown' : WORKLOADS.has(r.kind) ? sync : 'Synced',
    }));
  }

  private primaryWorkload(state: AppState): ResourceSeed | undefined {
    return state.resources.find((r) => WORKLOADS.has(r.kind)) ?? state.resources[0];
  }

  private revisionFields(spec: Spec, revisions: string[]): { revision: string } | { revisions: string[] } {
    return isMultiSource(spec) ? { revisions } : { revision: revisions[0] };
  }

  private timingOf(state: AppState): Timing {
    return { ...this.timing, ...state.seed.timing };
  }

  private uid(state: AppState, name: string): string {
    let uid = state.uids.get(name);
    if (!uid) {
      uid = randomUUID();
      state.uids.set(name, uid);
    }
    return uid;
  }

  private bump(state: AppState): void {
    state.app.metadata.resourceVersion = String(++this.resourceVersion);
  }

  private event(state: AppState, event: Omit<ControllerEvent, 'at' | 'app'>): void {
    this.events.push({ at: Date.now(), app: state.app.metadata.name, ...event });
  }

  private after(state: AppState, ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!state.removed) fn();
    }, ms);
    this.timers.add(timer);
  }

  private dispose(state: AppState): void {
    state.removed = true;
    if (state.interval) clearInterval(state.interval);
    state.refreshWaiters.clear();
  }
}
