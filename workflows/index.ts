// The worker's single workflows entry (workflowsPath). Exports workflow functions only.
export { pipelineWorkflow } from './pipeline';
export { promotionWorkflow } from './promotion';
export { deliveryWorkflow } from './delivery';
export { renderToolsWorkflow } from './render-tools';
