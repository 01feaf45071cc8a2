import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Roster's structured logger. Request logs carry the path only: the query of
 * a sign-in or consent callback holds codes and `state`. Headers that carry
 * credentials are removed wherever they appear.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'req.headers.cookie',
          'req.headers.authorization',
          'res.headers["set-cookie"]',
          '*.clientSecret',
          '*.client_secret',
          '*.accessToken',
          '*.access_token',
          '*.refreshToken',
          '*.refresh_token',
          '*.idToken',
          '*.id_token',
          '*.code',
          '*.password',
        ],
        remove: true,
      },
      serializers: {
        req: (req: { method: string; url: string; id?: string }) => ({ id: req.id, method: req.method, path: req.url.split('?')[0] }),
      },
    },
    destination,
  );
}
