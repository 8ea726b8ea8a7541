// `renderToolsWorkflow`: asks a worker of the task queue which render binaries it has (kustomize, helm) and their
// versions. One short activity; the client runs it when a pipeline that needs them is applied
// (client/render-tools.ts), so a missing binary is an error at apply time rather than in the middle of a promotion.
import { proxyActivities } from '@temporalio/workflow';
import type { FerryActivities } from '../activities';
import type { RenderToolVersions } from '../activities/render/tools-activity';

const { renderToolVersions } = proxyActivities<Pick<FerryActivities, 'renderToolVersions'>>({
  // Probing runs each binary's version command once per worker process; later answers are cached.
  startToCloseTimeout: '20s',
  retry: { maximumAttempts: 2 },
});

export async function renderToolsWorkflow(): Promise<RenderToolVersions> {
  return renderToolVersions();
}
