import type { Directory } from './model.ts';

export type SeedSource =
  | { kind: 'generate'; tenants: number; usersPerTenant: number; seed: number }
  | { kind: 'fixture'; path: string };

export async function applySeed(_directory: Directory, _source: SeedSource, _demoAppId: string): Promise<void> {}
