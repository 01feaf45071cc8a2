import { Type } from 'typebox';
import { EVENT_TYPES, isEventType, toEnvelope } from '../../events/types.ts';
import { apiKeyOf, requireScope, type ApiRoutePlugin } from '../context.ts';
import { ApiNotFoundError } from '../errors.ts';
import { InvalidInputError } from '../../tenants/errors.ts';
import { DEFAULT_LIMIT, PageParams, decodeCursor, encodeCursor } from '../pagination.ts';
import { EventSchema, GUID_PATTERN, problems } from '../schemas.ts';

const EventsQuery = Type.Object(
  {
    ...PageParams,
    types: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: `Comma-separated event types: ${EVENT_TYPES.join(', ')}.` })),
    tenant_id: Type.Optional(Type.String({ pattern: GUID_PATTERN, description: "Only this tenant's events." })),
  },
  { additionalProperties: false },
);

const EventPage = Type.Object(
  {
    data: Type.Array(EventSchema),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Where the next call continues: after the last event of this page, or where `after` pointed when nothing newer exists yet. Poll with it; null only before the first event.' }),
  },
  { title: 'EventPage' },
);

/** The event feed: every change in the order it committed, read from a cursor (events-and-api.md, Events). */
export const eventRoutes: ApiRoutePlugin = async (app, { events }) => {
  app.get(
    '/events',
    {
      onRequest: requireScope('events:read'),
      schema: { tags: ['events'], summary: 'List events after a cursor', operationId: 'listEvents', querystring: EventsQuery, response: { 200: EventPage, ...problems(400, 404) } },
    },
    async (request) => {
      const key = apiKeyOf(request);
      const { limit = DEFAULT_LIMIT } = request.query;
      let tenantId = request.query.tenant_id?.toLowerCase();
      // A key limited to one tenant reads only that tenant's events; naming another is the same 404 as a tenant that does not exist (rule 31).
      if (key.tenantId !== null) {
        if (tenantId !== undefined && tenantId !== key.tenantId) throw new ApiNotFoundError('Roster has no tenant with this id that this API key may see.');
        tenantId = key.tenantId;
      }
      const types = request.query.types?.split(',').map((t) => t.trim());
      const unknown = types?.find((type) => !isEventType(type));
      if (unknown !== undefined) throw new InvalidInputError('types', `"types" lists ${JSON.stringify(unknown.slice(0, 60))}, which is not an event type.`);
      const position = decodeCursor('events', request.query.after);
      if (position !== undefined && !/^\d{1,15}$/.test(position)) throw new InvalidInputError('after', '"after" is not a cursor of this list: pass the next_cursor of the previous page unchanged.');
      const rows = await events.list({ after: Number(position ?? 0), limit, ...(types ? { types } : {}), ...(tenantId === undefined ? {} : { tenantId }) });
      const last = rows.at(-1);
      return { data: rows.map(toEnvelope), next_cursor: last ? encodeCursor('events', String(last.sequence)) : (request.query.after ?? null) };
    },
  );
};
