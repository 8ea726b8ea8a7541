// Applying a pipeline whose stages render with kustomize or helm asks the workers whether they have those binaries
// (renderToolsWorkflow, one short activity on the task queue), so that a missing binary is a clear error at apply
// time, naming the stage's field, rather than a promotion failing mid-way. The API process may run on another
// machine than the workers: only a worker can say what it has.
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { TimeoutFailure } from '@temporalio/common';
import { installHint } from '../activities/render/tool-process';
import type { RenderToolVersions } from '../activities/render/tools-activity';
import type { Pipeline } from '../pipeline/schema';
import type { renderToolsWorkflow } from '../workflows/render-tools';
import { FerryError, type FieldError } from './errors';

/** How long a worker has to answer (the workflow's execution timeout). */
export const RENDER_TOOLS_CHECK_TIMEOUT_MS = 30_000;

/**
 * One FieldError per stage whose render engine (kustomize or helm) the workers of `taskQueue` do not have, at
 * `spec.stages[i].render.engine`; none when no stage needs a binary (then no worker is asked). When no worker
 * answers in time, every such stage gets an error saying so.
 */
export async function checkRenderTools(
  temporal: Client,
  taskQueue: string,
  spec: Pipeline,
  options: { timeoutMs?: number } = {},
): Promise<FieldError[]> {
  const needing = spec.spec.stages.flatMap((stage, i) =>
    stage.render.engine === 'kustomize' || stage.render.engine === 'helm'
      ? [{ path: `spec.stages[${i}].render.engine`, engine: stage.render.engine, stage: stage.name }]
      : [],
  );
  if (needing.length === 0) return [];
  const timeoutMs = options.timeoutMs ?? RENDER_TOOLS_CHECK_TIMEOUT_MS;
  let versions: RenderToolVersions;
  try {
    versions = await temporal.workflow.execute<typeof renderToolsWorkflow>('renderToolsWorkflow', {
      workflowId: `render-tools/${randomUUID()}`,
      taskQueue,
      workflowExecutionTimeout: timeoutMs,
      staticSummary: `Which render binaries the workers have (pipeline ${spec.metadata.name})`,
    });
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const why =
        err.cause instanceof TimeoutFailure
          ? `no Ferry worker on task queue "${taskQueue}" answered within ${Math.round(timeoutMs / 1000)}s`
          : `the worker could not say which render binaries it has (${err.cause?.message ?? err.message})`;
      return needing.map(({ path, engine, stage }) => ({
        path,
        message: `stage "${stage}" renders with ${engine}, and ${why}; start a worker (npm run worker) and apply again`,
      }));
    }
    throw new FerryError(
      'Unavailable',
      `could not ask the workers for their render binaries: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return needing
    .filter(({ engine }) => !versions[engine])
    .map(({ path, engine, stage }) => ({
      path,
      message: `stage "${stage}" renders with ${engine}, which the workers on task queue "${taskQueue}" do not have: ${installHint(engine)}`,
    }));
}
