import { main } from './commands/roster.ts';

const outcome = await main(process.argv.slice(2));
// A serving command keeps the process alive until a signal; everything else ends here.
if (outcome !== 'running') process.exitCode = outcome;
