// Guards npm scripts: fail loudly instead of running the suite on an old Node.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  console.error(
    `Node.js 24 is required, found ${process.versions.node} at ${process.execPath}. ` +
      'Run `npm install` first: it installs Node 24 into node_modules/.bin, which npm scripts use.',
  );
  process.exit(1);
}
