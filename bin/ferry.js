#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so a fresh `npm ci` needs no build step before `npx ferry`.
require('tsx/cjs');
require('../cli/main.ts');
