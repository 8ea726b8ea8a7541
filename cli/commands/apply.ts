// `ferry apply -f FILE`: sends a pipeline file to the API, which validates and applies it.
import fs from 'node:fs';
import path from 'node:path';
import type { PipelineStatus } from '../../workflows/messages';
import { call } from '../api';
import { expect } from '../args';
import type { Command } from '../command';
import { CliError, printJson, UsageError } from '../output';

export const apply: Command = {
  name: 'apply',
  usage: 'ferry apply -f FILE',
  help: ['ferry apply -f FILE', 'apply a pipeline file (YAML or JSON; -f - reads stdin)'],
  async run(args, io, api) {
    if (args.file === undefined) throw new UsageError('apply needs -f FILE', 'apply');
    expect(args, { count: 0, allow: ['file', 'json'] });
    const file = args.file;
    let text: string;
    try {
      text = file === '-' ? io.readStdin() : fs.readFileSync(path.resolve(io.cwd, file), 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new CliError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
    }
    const source = file === '-' ? '<stdin>' : file;

    // The URL names the pipeline, so the CLI needs metadata.name before the API can check the rest. Required here,
    // not imported at the top: the other commands start faster without YAML and zod. (require, not import():
    // bin/ferry.js registers tsx for CommonJS only.)
    const { parsePipelineDocument, pipelineNameOf, validatePipeline } =
      require('../../pipeline/load') as typeof import('../../pipeline/load');
    const parsed = parsePipelineDocument(text, { source });
    if (!parsed.ok) throw new CliError(`${source} is not a valid pipeline`, parsed.errors);
    const name = pipelineNameOf(parsed.value);
    if (name === undefined || name === '') {
      // Nothing to address the API with: report what the loader finds locally, in the API's format.
      const local = validatePipeline(parsed.value);
      const errors = local.ok ? [{ path: 'metadata.name', message: 'Required' }] : local.errors;
      throw new CliError(`${source} is not a valid pipeline`, errors);
    }
    const type = /\.json$/i.test(file) ? 'application/json' : 'application/yaml';
    const { data } = await call<PipelineStatus>(api, 'PUT', `/api/v1/pipelines/${encodeURIComponent(name)}`, {
      text,
      type,
    });
    if (args.json) printJson(io, data);
    else io.out(`pipeline ${data.name} applied (stages: ${data.stages.map((s) => s.name).join(', ')})`);
    return 0;
  },
};
