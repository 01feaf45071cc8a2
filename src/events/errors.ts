import { RosterError } from '../errors.ts';

/** A webhook endpoint's settings that cannot be accepted; the message names the field. */
export class WebhookInputError extends RosterError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message, { status: 400, code: 'invalid_webhook_endpoint', expose: true });
    this.field = field;
  }
}

export class WebhookNotFoundError extends RosterError {
  constructor(message: string) {
    super(message, { status: 404, code: 'webhook_not_found', expose: true });
  }
}
