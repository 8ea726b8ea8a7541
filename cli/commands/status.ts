// `ferry status PIPELINE`: each stage's current, running, queued and waiting freight, then the newest freight.
import type { PipelineStatus } from '../../workflows/messages';
import { call } from '../api';
import { expect } from '../args';
import type { Command } from '../command';
import { artifactList, orDash, printJson, table } from '../output';

const FREIGHT_SHOWN = 10;

export const status: Command = {
  name: 'status',
  usage: 'ferry status PIPELINE',
  help: ['ferry status PIPELINE', 'stages: current freight, running and queued promotions'],
  async run(args, io, api) {
    expect(args, { count: 1, allow: ['json'] });
    const [pipeline] = args.positionals;
    const { data } = await call<PipelineStatus>(api, 'GET', `/api/v1/pipelines/${encodeURIComponent(pipeline)}`);
    if (args.json) {
      printJson(io, data);
      return 0;
    }
    io.out(`pipeline ${data.name} (applied ${data.appliedAt})`);
    io.out();
    const stageRows = data.stages.map((stage) => {
      const busy = new Set([stage.running?.id, ...stage.queue.map((q) => q.id)]);
      return [
        stage.name,
        orDash(stage.current?.freight),
        orDash(stage.running?.freight),
        orDash(stage.queue.map((q) => q.freight).join(',')),
        // Started but not holding or waiting for the stage lock: at a gate (approval, deploy window).
        orDash(
          stage.active
            .filter((a) => !busy.has(a.id))
            .map((a) => a.freight)
            .join(','),
        ),
      ];
    });
    for (const line of table([['STAGE', 'CURRENT', 'RUNNING', 'QUEUED', 'WAITING'], ...stageRows])) io.out(line);

    const shown = data.freight.slice(0, FREIGHT_SHOWN);
    if (shown.length > 0) {
      io.out();
      const freightRows = shown.map((f) => [
        f.id,
        artifactList(f.artifacts, ','),
        orDash(f.verifiedIn.join(',')),
        f.createdAt,
      ]);
      for (const line of table([['FREIGHT', 'ARTIFACTS', 'VERIFIED IN', 'CREATED'], ...freightRows])) io.out(line);
      if (data.freight.length > shown.length)
        io.out(`(${data.freight.length - shown.length} older freight not shown; --json lists all)`);
    }
    return 0;
  },
};
