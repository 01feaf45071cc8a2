import type { Store } from './database.ts';
import { JobsRepository } from './jobs.ts';
import { TenantRepository } from './tenants.ts';
import { UserRepository } from './users.ts';

/** The repositories the commands and jobs use, built over one store so callers never hold its query builder. */
export interface CommandRepositories {
  tenants: TenantRepository;
  users: UserRepository;
  jobs: JobsRepository;
}

export function commandRepositories(store: Store, options: { sessionIdleMs: number }): CommandRepositories {
  return {
    tenants: new TenantRepository(store.db),
    users: new UserRepository(store.db, store.engine),
    jobs: new JobsRepository(store, options),
  };
}
