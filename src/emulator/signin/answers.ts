import type { FastifyReply } from 'fastify';
import { EmulatorError, entraErrorTrailer, entraErrorUri } from '../errors.ts';
import { errorPage, formPostPage } from '../views.ts';
import type { AppReturn } from './transaction.ts';

/** Sends parameters back to the app's redirect URI, in the response mode it asked for. */
export function sendToApp(reply: FastifyReply, target: Pick<AppReturn, 'redirectUri' | 'responseMode'>, params: Record<string, string | undefined>): FastifyReply {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) if (v !== undefined) clean[k] = v;
  // The status is set here because errors reach this from the error handler too.
  if (target.responseMode === 'form_post') return reply.code(200).type('text/html; charset=utf-8').send(formPostPage(target.redirectUri, clean));
  const url = new URL(target.redirectUri);
  if (target.responseMode === 'fragment') url.hash = new URLSearchParams(clean).toString();
  else for (const [k, v] of Object.entries(clean)) url.searchParams.set(k, v);
  return reply.redirect(url.toString(), 302);
}

/** An emulator page, with the headers Entra's own pages carry. */
export function sendPage(reply: FastifyReply, html: string, status = 200): FastifyReply {
  return reply
    .code(status)
    .header('cache-control', 'no-store')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .type('text/html; charset=utf-8')
    .send(html);
}

/** A sign-in error the app hears about: sent to its redirect URI (once the redirect URI is known to be the app's). */
export class AppRedirectError extends EmulatorError {
  readonly aadsts: number;
  readonly target: AppReturn;
  readonly extra: Record<string, string>;

  constructor(target: AppReturn, error: string, aadsts: number, message: string, extra: Record<string, string> = {}) {
    super(302, error, message, { expose: true });
    this.target = target;
    this.aadsts = aadsts;
    this.extra = extra;
  }

  override respond(reply: FastifyReply, now: Date): FastifyReply {
    return sendToApp(reply, this.target, {
      error: this.code,
      error_description: `AADSTS${this.aadsts}: ${this.message}${entraErrorTrailer(now).text}`,
      error_uri: entraErrorUri(this.aadsts),
      ...this.extra,
      state: this.target.state,
    });
  }
}

/** A sign-in error shown on the emulator's own page: the request cannot be trusted to redirect anywhere. */
export class SignInPageError extends EmulatorError {
  readonly aadsts: number;

  constructor(aadsts: number, message: string) {
    super(400, `AADSTS${aadsts}`, message, { expose: true });
    this.aadsts = aadsts;
  }

  override respond(reply: FastifyReply): FastifyReply {
    return sendPage(reply, errorPage({ code: this.aadsts, description: this.message }), this.status);
  }
}
