import { migrateToLatest, openStore } from '../store/database.ts';
import { readSettings, type Command } from './run.ts';

export const migrate: Command = {
  name: 'migrate',
  usage: 'Usage: roster migrate\n  Applies pending migrations to the database of DATABASE_URL (or the SQLite file under DATA_DIR).\n',
  async run() {
    const { config } = readSettings();
    const store = await openStore(config.database);
    try {
      const applied = await migrateToLatest(store);
      process.stdout.write(applied.length === 0 ? `Database ${store.location} is up to date.\n` : `Applied to ${store.location}: ${applied.map((m) => m.migrationName).join(', ')}\n`);
    } finally {
      await store.close();
    }
    return 0;
  },
};
