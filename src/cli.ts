import { demoCommand, emulatorCommand } from './emulator/cli.ts';

const HELP = `Usage: roster <command> [options]

Commands:
  demo        start the emulator with the demo tenants (Contoso, Fabrikam, Northwind Traders)
              and print the demo accounts; the Roster web app is not part of this build yet
  emulator    run the offline Entra ID + Graph emulator, or drive a running one
              (roster emulator --help)
  help        show this text
`;

/** Commands of the design that this build does not have yet: they say so instead of pretending. */
const NOT_YET = new Set(['serve', 'worker', 'sync', 'tenants', 'migrate', 'doctor']);

async function main(argv: string[]): Promise<number | 'running'> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'emulator':
      return emulatorCommand(rest);
    case 'demo':
      return demoCommand(rest);
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    case undefined:
      process.stderr.write(HELP);
      return 2;
    default:
      if (NOT_YET.has(command)) {
        process.stderr.write(`roster ${command}: not available yet in this version of Roster. Available now: roster demo, roster emulator.\n`);
        return 2;
      }
      process.stderr.write(`roster: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

const outcome = await main(process.argv.slice(2));
// A started emulator keeps the process alive until a signal; everything else ends here.
if (outcome !== 'running') process.exitCode = outcome;
