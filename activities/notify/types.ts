// The subscriber and target types the notify activities work with: the pipeline schema's, by name.
import type { NotifyTarget, Subscriber } from '../../pipeline/schema';

export type { NotifyTarget, Subscriber };
export type WebhookTarget = Extract<NotifyTarget, { type: 'webhook' }>;
export type GitHubDeploymentTarget = Extract<NotifyTarget, { type: 'github-deployment' }>;
export type TemporalTarget = Extract<NotifyTarget, { type: 'temporal' }>;
