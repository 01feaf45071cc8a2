#!/usr/bin/env node
// Plain JavaScript on purpose: this file must run on any Node to be able to
// refuse an old one with a clear message instead of a syntax error.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `roster: Node.js 24 or newer is required, but this is Node ${process.versions.node} (${process.execPath}).\n` +
      'Run it through npm (npm start, npm run roster -- ...), which uses the Node 24 that `npm install` brings in,\n' +
      'or install Node 24.\n',
  );
  process.exit(1);
}
// Every process strips and compiles Roster's TypeScript afresh; Node's on-disk compile cache keeps that work between runs (a third of start-up).
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../src/cli.ts');
