/**
 * Sign-in costs, each as a ratio taken in one run on this machine:
 *  1. ID token validation (`IdTokenValidator`, the full multi-tenant rule set)
 *     against a raw RS256 `crypto.verify` of the same tokens, the two taking
 *     turns over slices of the tokens so that load from other processes falls
 *     on both alike; the ratio is the median over the slices;
 *  2. requests per second of a protected page for a signed-in session (session
 *     lookup in SQLite, tenant and user checks, HTML rendering) against a bare
 *     Fastify route returning a page of the same size.
 *
 *   node_modules/.bin/node bench/signin.ts [--tokens 3000] [--seconds 5]
 */
import { createPublicKey, verify } from 'node:crypto';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { IdTokenValidator } from '../src/identity/id-token.ts';
import { OutboundHttp } from '../src/identity/http.ts';
import { loadAuthorityMetadata } from '../src/identity/metadata.ts';
import { issuerFor } from '../src/emulator/context.ts';
import { Browser } from '../test/helpers/browser.ts';
import { addOrg } from '../test/helpers/fixtures.ts';
import { startTestRoster } from '../test/helpers/roster.ts';
import { signIn, signUp } from '../test/web/flows.ts';

const { values } = parseArgs({ options: { tokens: { type: 'string', default: '3000' }, seconds: { type: 'string', default: '5' } } });
const TOKENS = Number(values.tokens);
const SECONDS = Number(values.seconds);

// Logs as production does by default (LOG_LEVEL=info), not at the tests' debug level.
const roster = await startTestRoster({ logLevel: 'info' });
const { ctx } = roster.emulator;
const contoso = addOrg(ctx, 'Contoso', 'contoso.com');

// 1. Token validation.
const now = ctx.clock.nowSeconds();
const tokens: string[] = [];
for (let i = 0; i < TOKENS; i++) {
  tokens.push(
    await ctx.keyring.sign({
      aud: roster.emulator.demoApp.clientId,
      iss: issuerFor(ctx, contoso.tenant.id),
      iat: now,
      nbf: now,
      exp: now + 3600,
      tid: contoso.tenant.id,
      oid: contoso.member.props.id,
      sub: `sub-${i}`,
      nonce: 'bench',
      name: 'Bench User',
      ver: '2.0',
    }),
  );
}
const http = new OutboundHttp({ trustedCaPem: roster.emulator.caCertPem });
const validator = new IdTokenValidator(http, await loadAuthorityMetadata(http, new URL(roster.emulator.urls.authority)), roster.emulator.demoApp.clientId);
await validator.validate(tokens[0]!, 'bench'); // fetches the key set once

const jwks = ctx.keyring.jwks(issuerFor(ctx)).keys;
const keysByKid = new Map(jwks.map((k) => [k.kid, createPublicKey({ key: { kty: 'RSA', n: k.n, e: k.e }, format: 'jwk' })]));
function rawVerify(token: string): boolean {
  const [h, p, s] = token.split('.') as [string, string, string];
  const kid = (JSON.parse(Buffer.from(h, 'base64url').toString()) as { kid: string }).kid;
  return verify('sha256', Buffer.from(`${h}.${p}`), keysByKid.get(kid)!, Buffer.from(s, 'base64url'));
}

const SLICE = 250;
const PASSES = 3;
let rawMs = 0;
let validationMs = 0;
const sliceRatios: number[] = [];
for (let pass = 0; pass < PASSES; pass++) {
  for (let from = 0; from < TOKENS; from += SLICE) {
    const slice = tokens.slice(from, from + SLICE);
    let start = performance.now();
    for (const token of slice) if (!rawVerify(token)) throw new Error('raw verify failed');
    const raw = performance.now() - start;
    start = performance.now();
    for (const token of slice) await validator.validate(token, 'bench');
    const validation = performance.now() - start;
    rawMs += raw;
    validationMs += validation;
    sliceRatios.push(raw / validation);
  }
}
sliceRatios.sort((a, b) => a - b);
const rawPerSecond = (TOKENS * PASSES) / (rawMs / 1000);
const validationPerSecond = (TOKENS * PASSES) / (validationMs / 1000);
const medianRatio = sliceRatios[Math.floor(sliceRatios.length / 2)]!;

// 2. Protected page against a bare route.
await signUp(new Browser(), roster, contoso);
const browser = new Browser();
await signIn(browser, roster, contoso.admin.props.userPrincipalName);
const cookie = `roster_session=${browser.cookie('roster_session')}`;
const page = await browser.get(`${roster.url}/app`);
if (page.status !== 200) throw new Error(`protected page answered ${page.status}`);

const bare = Fastify();
const html = page.html;
bare.get('/app', async (_req, reply) => reply.type('text/html; charset=utf-8').send(html));
await bare.listen({ host: '127.0.0.1', port: 0 });
const barePort = (bare.server.address() as { port: number }).port;

async function load(url: string, headers: Record<string, string>): Promise<autocannon.Result> {
  const result = await autocannon({ url, headers, connections: 10, duration: SECONDS });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result;
}
const bareResult = await load(`http://127.0.0.1:${barePort}/app`, {});
const appResult = await load(`${roster.url.replace('localhost', '127.0.0.1')}/app`, { cookie, host: new URL(roster.url).host });

await bare.close();
await http.close();
await roster.close();

const rows = [
  ['ID token validation (all checks)', `${validationPerSecond.toFixed(0)} tokens/s`],
  ['raw RS256 crypto.verify, same tokens', `${rawPerSecond.toFixed(0)} tokens/s`],
  ['  ratio validation / raw verify (median of slices)', medianRatio.toFixed(2)],
  ['protected page, signed-in session (SQLite)', `${appResult.requests.average.toFixed(0)} req/s, p99 ${appResult.latency.p99} ms`],
  ['bare Fastify route, same HTML', `${bareResult.requests.average.toFixed(0)} req/s, p99 ${bareResult.latency.p99} ms`],
  ['  ratio protected page / bare route', (appResult.requests.average / bareResult.requests.average).toFixed(2)],
];
const width = Math.max(...rows.map(([a]) => a!.length));
console.log(`bench/signin.ts: ${TOKENS} tokens x ${PASSES} passes in slices of ${SLICE}, ${SECONDS} s per load run, 10 connections`);
for (const [label, value] of rows) console.log(`${label!.padEnd(width)}  ${value}`);
