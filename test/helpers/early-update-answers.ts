// A Temporal connection that produces, on demand, what a loaded server does now and then: it answers an update as
// soon as the workflow accepted it, before the update completed, so the client must poll for the outcome; and the
// test decides when those polls go out (e.g. only after the workflow continued as new).
import * as grpc from '@grpc/grpc-js';
import { Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const { UpdateWorkflowExecutionRequest, PollWorkflowExecutionUpdateRequest } = temporal.api.workflowservice.v1;
const ACCEPTED =
  temporal.api.enums.v1.UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED;

export interface EarlyUpdateAnswers {
  connection: Connection;
  /** The run id each outcome poll asked (empty when it asked the workflow's current run). */
  polledRuns: string[];
  /** Lets the held polls (and every later one) go to the server. */
  releasePolls(): void;
}

export async function connectWithEarlyUpdateAnswers(address: string): Promise<EarlyUpdateAnswers> {
  const polledRuns: string[] = [];
  let releasePolls: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (releasePolls = resolve));

  const interceptor: grpc.Interceptor = (options, nextCall) => {
    const path = options.method_definition.path;
    if (path.endsWith('/UpdateWorkflowExecution')) {
      return new grpc.InterceptingCall(nextCall(options), {
        sendMessage(message: Uint8Array, next) {
          const request = UpdateWorkflowExecutionRequest.decode(message);
          request.waitPolicy = { lifecycleStage: ACCEPTED };
          next(UpdateWorkflowExecutionRequest.encode(request).finish());
        },
      });
    }
    if (path.endsWith('/PollWorkflowExecutionUpdate')) {
      return new grpc.InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          void released.then(() => next(metadata, listener));
        },
        sendMessage(message: Uint8Array, next) {
          polledRuns.push(PollWorkflowExecutionUpdateRequest.decode(message).updateRef?.workflowExecution?.runId ?? '');
          next(message);
        },
      });
    }
    return new grpc.InterceptingCall(nextCall(options));
  };

  const connection = await Connection.connect({
    address,
    interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), interceptor],
  });
  return { connection, polledRuns, releasePolls };
}
