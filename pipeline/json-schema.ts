// The pipeline file as JSON Schema, for editors (yaml-language-server, VS Code) and for other tools. Generated from
// the zod schema, so it cannot disagree with what Ferry accepts (except the rules across fields in load.ts).
import { z } from 'zod';
import { API_VERSION, PipelineSchema } from './schema';

export const PIPELINE_SCHEMA_ID = 'https://ferry.dev/schemas/v1alpha1/pipeline.schema.json';

/**
 * JSON Schema (draft 2020-12) of the pipeline file as users write it: fields with defaults are optional and carry
 * their `default`. Deterministic: the same schema gives byte-identical output.
 */
export function pipelineJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(PipelineSchema, { target: 'draft-2020-12', io: 'input' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    $id: PIPELINE_SCHEMA_ID,
    title: 'Ferry Pipeline',
    ...rest,
    description: `${PipelineSchema.description ?? 'A Ferry pipeline.'} Format ${API_VERSION}; field reference: docs/reference/pipeline.md.`,
  };
}
