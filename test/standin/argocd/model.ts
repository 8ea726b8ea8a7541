// The Argo CD objects as they go over the wire: Go `json:` tag names, `omitempty` honoured by
// leaving fields undefined, int64 as numbers, times as RFC 3339 at second precision.

export type HealthStatus = 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended' | 'Missing' | 'Unknown';
export type SyncStatus = 'Synced' | 'OutOfSync' | 'Unknown';
export type OperationPhase = 'Running' | 'Terminating' | 'Failed' | 'Error' | 'Succeeded';

export interface Source {
  repoURL: string;
  path?: string;
  targetRevision?: string;
  chart?: string;
  ref?: string;
  name?: string;
  [field: string]: unknown;
}

export interface Destination {
  server?: string;
  namespace?: string;
  name?: string;
}

export interface SyncPolicy {
  automated?: { enabled?: boolean; prune?: boolean; selfHeal?: boolean; allowEmpty?: boolean };
  syncOptions?: string[];
  retry?: unknown;
}

export interface Spec {
  project: string;
  source?: Source;
  sources?: Source[];
  destination: Destination;
  syncPolicy?: SyncPolicy;
  [field: string]: unknown;
}

export interface Info {
  name: string;
  value: string;
}

export interface Operation {
  sync: {
    revision?: string;
    revisions?: string[];
    prune?: boolean;
    dryRun?: boolean;
    syncStrategy?: unknown;
    resources?: unknown[];
    syncOptions?: string[];
  };
  initiatedBy: { username?: string; automated?: boolean };
  info?: Info[];
  retry?: unknown;
}

export interface ResourceResult {
  group?: string;
  version: string;
  kind: string;
  namespace?: string;
  name: string;
  status: 'Synced' | 'SyncFailed' | 'Pruned' | 'PruneSkipped';
  message?: string;
  hookPhase?: string;
  syncPhase?: string;
}

export interface OperationState {
  operation: Operation;
  phase: OperationPhase;
  message?: string;
  startedAt: string;
  finishedAt?: string;
  retryCount?: number;
  syncResult?: {
    revision?: string;
    revisions?: string[];
    source?: Source;
    sources?: Source[];
    resources?: ResourceResult[];
  };
}

export interface ResourceStatus {
  group?: string;
  version: string;
  kind: string;
  namespace?: string;
  name: string;
  status?: SyncStatus;
  health?: { status: HealthStatus; message?: string };
}

export interface Condition {
  type: string;
  message: string;
  lastTransitionTime?: string;
}

export interface HistoryEntry {
  id: number;
  revision?: string;
  revisions?: string[];
  deployedAt: string;
  deployStartedAt?: string;
  source?: Source;
  sources?: Source[];
  initiatedBy?: { username?: string; automated?: boolean };
}

export interface AppStatus {
  sync: {
    status: SyncStatus;
    revision?: string;
    revisions?: string[];
    comparedTo?: { source?: Source; sources?: Source[]; destination: Destination };
  };
  health: { status?: HealthStatus; message?: string; lastTransitionTime?: string };
  operationState?: OperationState;
  conditions?: Condition[];
  reconciledAt?: string;
  resources?: ResourceStatus[];
  history?: HistoryEntry[];
  sourceType?: string;
  resourceHealthSource?: 'appTree';
  controllerNamespace?: string;
  summary: { images?: string[] };
}

export interface Application {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    generation: number;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: Spec;
  operation?: Operation;
  status: AppStatus;
}

export interface ResourceNode {
  group?: string;
  version: string;
  kind: string;
  namespace?: string;
  name: string;
  uid: string;
  resourceVersion: string;
  parentRefs?: { group?: string; kind: string; namespace?: string; name: string; uid: string }[];
  info?: Info[];
  health?: { status: HealthStatus; message?: string };
  images?: string[];
  createdAt: string;
}

export const REFRESH_ANNOTATION = 'argocd.argoproj.io/refresh';

/** metav1.Time: RFC 3339, second precision. */
export function wireTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

/** `spec.sources` when set (multi-source), else `[spec.source]`. */
export function sourcesOf(spec: Spec): Source[] {
  if (spec.sources && spec.sources.length > 0) return spec.sources;
  return spec.source ? [spec.source] : [];
}

export function isMultiSource(spec: Spec): boolean {
  return (spec.sources?.length ?? 0) > 0;
}

export function isAutomated(spec: Spec): boolean {
  const automated = spec.syncPolicy?.automated;
  return automated !== undefined && automated !== null && automated.enabled !== false;
}
