// Inbound webhooks: the router the API mounts at /webhooks, the secrets it verifies with, the signing helpers a
// sender (or a test) uses, and the schemas of what the routes accept and answer.
export { createWebhookRouter, DEFAULT_REPLAY_WINDOW_SECONDS, type WebhookRouterOptions } from './router';
export { createWebhookSecrets, staticWebhookSecrets, webhookSecretNames, type WebhookSecrets } from './secrets';
export {
  gitLabTokenMatches,
  parseGiteaSignature,
  parseSignature,
  signGenericDelivery,
  signGitHubDelivery,
  signGiteaDelivery,
  verifyGenericDelivery,
  verifyGitHubDelivery,
  verifyGiteaDelivery,
} from './signatures';
export * from './payloads';
export { DEFAULT_MAX_BODY_BYTES } from './body';
