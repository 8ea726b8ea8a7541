// The pipeline spec's public API: the schema and its types, loading and validation, freight ids, the JSON Schema.
// Edge code only (API, CLI, worker, scripts): workflows `import type` from './schema' and nothing else.
export * from './schema';
export {
  formatPath,
  formatSpecErrors,
  loadPipelineFile,
  parsePipelineDocument,
  parsePipelineText,
  PIPELINE_RULES,
  pipelineNameOf,
  ROOT_PATH,
  specErrorsFromZod,
  validatePipeline,
} from './load';
export type { LoadResult, ParseResult, SpecError } from './load';
export { freightId, IMAGE_DIGEST, IMAGE_TAG, validateFreight } from './freight';
export { PIPELINE_SCHEMA_ID, pipelineJsonSchema } from './json-schema';
