import { doctorCommand, migrateCommand, serveCommand, syncCommand, workerCommand } from './commands.ts';
import { emulatorCommand } from './emulator/cli.ts';

const HELP = `Usage: roster <command> [options]

Commands:
  serve       serve the Roster web app with the settings of the environment (see the README);
              without Entra settings it runs the demo
  demo        the emulator with demo organisations and Roster on SQLite, in one process
  migrate     apply pending database migrations
  doctor      check the configuration, the database and the identity provider
  sync        sync the user directories of active tenants now ([--tenant ID] [--full])
  worker      work the directory sync queue (PostgreSQL); run any number, on any machines
  emulator    run the offline Entra ID + Graph emulator, or drive a running one
              (roster emulator --help)
  help        show this text
`;

/** Commands of the design that this build does not have yet: they say so instead of pretending. */
const NOT_YET = new Set(['tenants']);

async function main(argv: string[]): Promise<number | 'running'> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'emulator':
      return emulatorCommand(rest);
    case 'serve':
      return serveCommand(rest, 'serve');
    case 'demo':
      return serveCommand(rest, 'demo');
    case 'migrate':
      return migrateCommand(rest);
    case 'doctor':
      return doctorCommand(rest);
    case 'sync':
      return syncCommand(rest);
    case 'worker':
      return workerCommand(rest);
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
        process.stderr.write(`roster ${command}: not available yet in this version of Roster. Available now: roster serve, demo, migrate, doctor, sync, worker, emulator.\n`);
        return 2;
      }
      process.stderr.write(`roster: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

const outcome = await main(process.argv.slice(2));
// A started emulator keeps the process alive until a signal; everything else ends here.
if (outcome !== 'running') process.exitCode = outcome;
