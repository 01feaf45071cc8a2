import { asciiSlug } from './ascii.ts';
import { DYNAMIC_MEMBERSHIP, UNIFIED, type GroupInput } from './groups.ts';
import type { Tenant } from './model.ts';
import { seededRandom } from './random.ts';

type GeneratedGroup = GroupInput & { id: string; members: string[] };

const TEAM_WORDS = ['Team', 'Leads', 'Project Falcon', 'Project Atlas', 'Champions', 'Reviewers', 'On-call', 'Planning', 'Guild', 'Approvers', 'Readers', 'Owners'];
const AREAS = ['Sales', 'Marketing', 'Finance', 'HR', 'Operations', 'Legal', 'IT', 'Support', 'Engineering', 'Research', 'Security', 'Design', 'Data', 'Facilities'];
/** Kinds in proportion: most groups are security groups, as in most tenants. */
const KIND_ROLLS: [number, 'security' | 'microsoft365' | 'distribution' | 'dynamic'][] = [
  [0.6, 'security'],
  [0.8, 'microsoft365'],
  [0.9, 'distribution'],
  [1, 'dynamic'],
];
/** Most users are in the first group ("All Company"); the others hold up to this many (a few reach it). */
const EVERYONE_SHARE = 0.92;
const LARGEST_OTHER_GROUP = 2000;
/** The first groups after "All Company" nest in a chain this deep, so transitive reads have depth to walk. */
const NESTED_CHAIN = 3;
/** Generated groups were created in these years (deterministic, unlike "now"). */
const CREATED_FROM_MS = Date.UTC(2020, 0, 1);
const CREATED_SPAN_MS = 4 * 365 * 86_400_000;

export interface GenerateGroupsOptions {
  count: number;
  seed: number;
  /** Makes a group id from the seeded stream (the generator's GUIDs). */
  guid: (random: () => number) => string;
}

/**
 * Groups for a tenant whose users exist: "All Company" with most users, a
 * chain nested three deep, further nesting from later groups only (no cycles),
 * membership sizes from a handful to thousands, dynamic groups whose fixed
 * members match their rule. The same tenant, count and seed give the same groups.
 */
export function generateGroups(tenant: Pick<Tenant, 'users' | 'defaultDomain'>, options: GenerateGroupsOptions): GeneratedGroup[] {
  const random = seededRandom(options.seed);
  const users = tenant.users;
  const groups: GeneratedGroup[] = [];
  for (let i = 0; i < options.count; i++) {
    const id = options.guid(random);
    const createdDateTime = new Date(CREATED_FROM_MS + Math.floor(random() * CREATED_SPAN_MS)).toISOString();
    if (i === 0) {
      groups.push({ id, createdDateTime, displayName: 'All Company', description: 'Everyone in the company', members: usersWith(users, (_, r) => r < EVERYONE_SHARE, random) });
      continue;
    }
    const area = AREAS[Math.floor(random() * AREAS.length)]!;
    const word = TEAM_WORDS[Math.floor(random() * TEAM_WORDS.length)]!;
    const displayName = `${area} ${word} ${i}`;
    const mailNickname = `${asciiSlug(`${area}${word}`)}${i}`;
    const roll = random();
    const kind = i <= NESTED_CHAIN + 1 ? 'security' : KIND_ROLLS.find(([limit]) => roll < limit)![1];
    if (kind === 'dynamic') {
      const department = users.length > 0 ? users[Math.floor(random() * users.length)]!.props.department : null;
      const office = users.length > 0 ? users[Math.floor(random() * users.length)]!.props.officeLocation : null;
      groups.push({
        id,
        createdDateTime,
        displayName,
        mailNickname,
        groupTypes: [DYNAMIC_MEMBERSHIP],
        membershipRule: `(user.department -eq ${JSON.stringify(department ?? '')}) and (user.officeLocation -eq ${JSON.stringify(office ?? '')})`,
        // The members the rule selects now; the emulator does not evaluate rules afterwards.
        members: [...(usersByPlace(users).get(`${department}\n${office}`) ?? [])],
      });
      continue;
    }
    const size = Math.min(users.length, 2 + Math.floor(random() ** 3 * LARGEST_OTHER_GROUP));
    const members = sampleUsers(users, size, random);
    const props: Partial<GroupInput> =
      kind === 'microsoft365' ? { groupTypes: [UNIFIED] } : kind === 'distribution' ? { mailEnabled: true, securityEnabled: false } : {};
    groups.push({ id, createdDateTime, displayName, mailNickname, ...props, members });
  }
  nest(groups, random);
  return groups;
}

/** A chain (group 1 holds 2, 2 holds 3, ...) and, for a fifth of the others, one to three later non-365 groups. */
function nest(groups: GeneratedGroup[], random: () => number): void {
  const nestable = (g: GeneratedGroup) => !g.groupTypes?.length;
  for (let i = 1; i <= NESTED_CHAIN && i + 1 < groups.length; i++) groups[i]!.members.push(groups[i + 1]!.id);
  for (let i = NESTED_CHAIN + 2; i < groups.length; i++) {
    const parent = groups[i]!;
    if (!nestable(parent) || random() >= 0.2) continue;
    const wanted = 1 + Math.floor(random() * 3);
    for (let n = 0; n < wanted; n++) {
      // Only later groups: the generated nesting never makes a cycle.
      const child = groups[i + 1 + Math.floor(random() * (groups.length - i - 1))];
      if (child && nestable(child) && !parent.members.includes(child.id)) parent.members.push(child.id);
    }
  }
}

const placeIndexes = new WeakMap<Tenant['users'], Map<string, string[]>>();

/** Users by department and office, built once per listing: what the generated dynamic rules select. */
function usersByPlace(users: Tenant['users']): Map<string, string[]> {
  let index = placeIndexes.get(users);
  if (!index) {
    index = new Map();
    for (const user of users) {
      if (user.props.department === null) continue;
      const key = `${user.props.department}\n${user.props.officeLocation}`;
      const list = index.get(key);
      if (list) list.push(user.props.id);
      else index.set(key, [user.props.id]);
    }
    placeIndexes.set(users, index);
  }
  return index;
}

function usersWith(users: Tenant['users'], keep: (index: number, roll: number) => boolean, random: () => number): string[] {
  const out: string[] = [];
  for (let i = 0; i < users.length; i++) if (keep(i, random())) out.push(users[i]!.props.id);
  return out;
}

/** `size` distinct users, in listing order: a set of picks for small groups, one pass for large ones. */
function sampleUsers(users: Tenant['users'], size: number, random: () => number): string[] {
  if (size * 2 > users.length) return usersWith(users, (_, roll) => roll < size / users.length, random);
  const picked = new Set<number>();
  while (picked.size < size) picked.add(Math.floor(random() * users.length));
  return [...picked].sort((a, b) => a - b).map((i) => users[i]!.props.id);
}
