/**
 * The notifications the owner can get, and the one builder of their payload. It
 * takes public facts only (an event name, a keyid it shortens as the logs do, a
 * service id, text the broker wrote, the time): no secret can reach a target
 * because no secret is ever handed to this file.
 */
import { short } from '../broker/tokens.ts';
import { PROVIDERS } from '../oauth/providers.ts';

const PROVIDER_NAMES: Readonly<Record<string, string>> = Object.fromEntries(Object.values(PROVIDERS).map((p) => [p.id, p.name]));

export const NOTIFY_EVENTS = [
  'connection.login_required',
  'app.rejected',
  'app.secret_expiring',
  'connection.idle',
  'upstream.outage',
  'upstream.recovered',
  'connection.revoked',
  'connection.created',
  'notify.test',
] as const;
export type NotifyEventName = (typeof NOTIFY_EVENTS)[number];

/** Sent only with --notify-all: the owner did these themselves. */
export const QUIET_EVENTS: ReadonlySet<NotifyEventName> = new Set(['connection.revoked', 'connection.created']);

export type Severity = 'info' | 'warning' | 'critical';

/** The payload, as the JSON format sends it; the other formats are made from it. */
export interface Notification {
  event: NotifyEventName;
  severity: Severity;
  /** The first characters of the keyid, as in the logs; null when no connection is concerned. */
  keyid: string | null;
  service: string | null;
  message: string;
  hint: string | null;
  /** ISO 8601. */
  time: string;
}

/** A notification and its cause: the key under which it is sent once only (see Notifier). */
export interface Cause {
  key: string;
  notification: Notification;
}

export function notification(p: {
  event: NotifyEventName;
  severity: Severity;
  keyid?: string;
  service?: string;
  message: string;
  hint?: string;
  now: number;
}): Notification {
  return {
    event: p.event,
    severity: p.severity,
    keyid: p.keyid ? short(p.keyid) : null,
    service: p.service ?? null,
    message: p.message,
    hint: p.hint ?? null,
    time: new Date(p.now).toISOString(),
  };
}

const newAuthId = (publicUrl: string) => `Create a new AuthID at ${publicUrl}/ and put it in the backup job.`;

export function loginRequired(keyid: string, service: string, reason: string, publicUrl: string, now: number): Cause {
  return {
    key: `connection.login_required:${keyid}`,
    notification: notification({
      event: 'connection.login_required',
      severity: 'critical',
      keyid,
      service,
      message: `Connection ${short(keyid)} (${service}) needs a new sign-in; its backups fail until then. ${reason}`,
      hint: newAuthId(publicUrl),
      now,
    }),
  };
}

/**
 * `reason` without what differs per answer (Microsoft's trace id): one notification
 * per cause and app registration. `app` names the registration as the owner fixes
 * it (see appFingerprint), so that a new secret rejected again is a new cause.
 */
export function appRejected(reason: string, app: string, now: number, provider = 'microsoft'): Cause {
  const name = PROVIDER_NAMES[provider] ?? provider;
  return {
    key: `app.rejected:${app}:${reason}`,
    notification: notification({
      event: 'app.rejected',
      severity: 'critical',
      message: `${reason} Every ${name} refresh fails until the app is fixed.`,
      hint:
        provider === 'microsoft'
          ? 'Check the app registration in Entra; for a new client secret run `broker init --client-secret-file FILE` (and `broker doctor` to check).'
          : `Check the app in the ${name} console; for a new secret run \`broker init --provider ${provider} --client-secret-file FILE\` (and \`broker doctor\` to check).`,
      now,
    }),
  };
}

/** `daysLeft` in calendar days (0 on the date itself); `threshold` the mark reached (30, 7, 1, 0): one notification each. */
/** Which app a secret belongs to: Microsoft's (the top-level settings) or another provider's. */
export interface AppRef {
  id: string;
  name: string;
}

export function secretExpiring(expires: string, threshold: number, daysLeft: number, now: number, app: AppRef = { id: 'microsoft', name: 'Microsoft' }): Cause {
  const message =
    daysLeft <= 0
      ? `The ${app.name} app secret expires on ${expires} (today, or already past): from then every ${app.name} refresh fails.`
      : `The ${app.name} app secret expires in ${daysLeft === 1 ? '1 day' : `${daysLeft} days`}, on ${expires}.`;
  const hint =
    app.id === 'microsoft'
      ? 'Create a new client secret in Entra, then run `broker init --client-secret-file FILE --secret-expires YYYY-MM-DD`.'
      : `Create a new secret in the ${app.name} console, then run \`broker init --provider ${app.id} --client-secret-file FILE --secret-expires YYYY-MM-DD\`.`;
  return {
    // Microsoft's key is unchanged from before there were other providers, so a claim already sent stays sent.
    key: `app.secret_expiring:${app.id === 'microsoft' ? '' : `${app.id}:`}${expires}:${threshold}`,
    notification: notification({ event: 'app.secret_expiring', severity: threshold <= 1 ? 'critical' : 'warning', message, hint, now }),
  };
}

export function connectionIdle(keyid: string, service: string, idleDays: number, lastUse: number, ends: string, now: number): Cause {
  return {
    key: `connection.idle:${keyid}:${lastUse}`,
    notification: notification({
      event: 'connection.idle',
      severity: 'warning',
      keyid,
      service,
      message: `Connection ${short(keyid)} (${service}) was not used for ${idleDays} days: the provider ends it on ${ends} unless it is used before.`,
      hint: 'Run the backup job (or one refresh with its AuthID) before then; if it is no longer needed, `broker revoke` it.',
      now,
    }),
  };
}

/**
 * Keyed by the hour the failures began: instances sharing one database see the
 * same outage start within seconds of each other, so one of them sends it.
 */
const outageKey = (provider: string, since: number) => `${provider}:${Math.floor(since / 3_600_000)}`;

export function upstreamOutage(provider: string, since: number, now: number): Cause {
  const minutes = Math.round((now - since) / 60_000);
  return {
    key: `upstream.outage:${outageKey(provider, since)}`,
    notification: notification({
      event: 'upstream.outage',
      severity: 'warning',
      message: `The ${provider} token endpoint has failed for ${minutes} minutes (since ${new Date(since).toISOString()}); tokens are served from memory while they last.`,
      hint: 'Nothing to fix on the broker if the provider is down; check the network, DNS and proxy otherwise.',
      now,
    }),
  };
}

export function upstreamRecovered(provider: string, since: number, now: number): Cause {
  return {
    key: `upstream.recovered:${outageKey(provider, since)}`,
    notification: notification({
      event: 'upstream.recovered',
      severity: 'info',
      message: `The ${provider} token endpoint answers again (failing since ${new Date(since).toISOString()}).`,
      now,
    }),
  };
}

export function connectionCreated(keyid: string, service: string, now: number): Cause {
  return {
    key: `connection.created:${keyid}`,
    notification: notification({
      event: 'connection.created',
      severity: 'info',
      keyid,
      service,
      message: `Connection ${short(keyid)} (${service}) was created.`,
      now,
    }),
  };
}

export function connectionRevoked(keyid: string, now: number): Cause {
  return {
    key: `connection.revoked:${keyid}`,
    notification: notification({ event: 'connection.revoked', severity: 'info', keyid, message: `Connection ${short(keyid)} was revoked.`, now }),
  };
}

export function testNotification(now: number): Notification {
  return notification({ event: 'notify.test', severity: 'info', message: 'A test notification from the broker: this target works.', now });
}
